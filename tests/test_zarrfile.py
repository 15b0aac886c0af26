"""labrram.zarrfile writes zarr v3 arrays directly: zarr-python and xarray must read them as their
own, with the same metadata zarr-python writes for the same codecs."""

import json
import warnings

import numpy as np
import pytest
import zarr

from labrram import zarrfile


def _meta(path):
    return json.loads((path / "zarr.json").read_text())


CASES = {
    "float64": np.random.default_rng(0).normal(size=(37, 5)),
    "bool": np.random.default_rng(1).random((6, 7)) > 0.5,
    "int64": np.arange(2077, dtype=np.int64),
    "int32": np.arange(10, dtype=np.int32).reshape(2, 5),
    "uint8": np.arange(7, dtype=np.uint8),
    "float32": np.linspace(0, 1, 9, dtype=np.float32),
    "string": np.array(["step", "row", "g_after", "µS"]),
}


@pytest.mark.parametrize("compressor", ["blosc", "zstd"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_an_array_written_directly_reads_back_and_has_zarr_pythons_metadata(tmp_path, name, compressor):
    data = CASES[name]
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=3)
    dims = [f"d{k}" for k in range(data.ndim)]
    zarrfile.write_array(tmp_path / "g.zarr" / "direct", data, dimension_names=dims, attributes={"units": "1"}, compressor=compressor)
    if compressor == "zstd" or data.dtype.kind == "U":  # strings are always zstd
        codec = zarr.codecs.ZstdCodec(level=1)
    else:
        codec = zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
    if data.dtype.kind == "U":
        ref = group.create_array("ref", shape=data.shape, dtype=str, dimension_names=dims, attributes={"units": "1"}, compressors=codec)
        ref[...] = data.astype(object)
    else:
        group.create_array("ref", data=data, dimension_names=dims, attributes={"units": "1"}, compressors=codec)
    mine, theirs = _meta(tmp_path / "g.zarr" / "direct"), _meta(tmp_path / "g.zarr" / "ref")
    assert mine == theirs
    got = zarr.open_array(str(tmp_path / "g.zarr" / "direct"), mode="r")[...]
    np.testing.assert_array_equal(np.asarray(got).astype(data.dtype), data)
    zarrfile.read_metadata(tmp_path / "g.zarr" / "ref") if data.dtype.kind != "U" else None  # zarr-python's array is one appended to


def test_an_index_compresses_to_almost_nothing(tmp_path):
    """Byte-shuffled blosc stores 0 … n-1 in under a tenth of a byte per value (zstd alone: about
    one byte per value)."""
    zarrfile.write_array(tmp_path / "i", np.arange(1 << 20, dtype=np.int64))
    assert (tmp_path / "i" / "c" / "0").stat().st_size < (1 << 20) // 10
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "i"), mode="r")[...], np.arange(1 << 20))


def test_chunks_edges_and_capacity_read_as_the_fill_value(tmp_path):
    data = np.random.default_rng(2).normal(size=(100, 30))
    zarrfile.write_array(tmp_path / "a", data, chunks=(64, 30), shape=(256, 30), fill_value=np.nan)
    zarrfile.write_array(tmp_path / "b", data, chunks=(33, 7))
    a = np.asarray(zarr.open_array(str(tmp_path / "a"), mode="r")[...])
    np.testing.assert_array_equal(a[:100], data)
    assert a.shape == (256, 30) and np.isnan(a[100:]).all()
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "b"), mode="r")[...], data)
    assert not list(tmp_path.rglob("*.partial"))  # every file renamed into place


def test_appending_whole_chunks_then_growing_the_shape(tmp_path):
    zarrfile.write_array(tmp_path / "a", np.empty((0, 3)), chunks=(4, 3), shape=(4, 3), fill_value=np.nan)
    meta = zarrfile.read_metadata(tmp_path / "a")
    rows = np.arange(30.0).reshape(10, 3)
    written = zarrfile.write_chunks(tmp_path / "a", meta, 0, rows)
    assert [p.relative_to(tmp_path / "a").as_posix() for p in written] == ["c/0/0", "c/1/0", "c/2/0"]
    assert zarr.open_array(str(tmp_path / "a"), mode="r").shape == (4, 3)  # unchanged until set_shape
    zarrfile.set_shape(tmp_path / "a", meta, (10, 3))
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "a"), mode="r")[...], rows)
    with pytest.raises(zarrfile.ZarrFileError, match="chunk boundary"):
        zarrfile.write_chunks(tmp_path / "a", meta, 5, rows)


def test_refusals_name_the_problem(tmp_path):
    with pytest.raises(zarrfile.ZarrFileError, match="complex128"):
        zarrfile.write_array(tmp_path / "c", np.zeros(3, complex))
    zarrfile.write_array(tmp_path / "x", np.zeros(3))
    with pytest.raises(zarrfile.ZarrFileError, match="already exists"):
        zarrfile.write_array(tmp_path / "x", np.ones(3))
    zarrfile.write_array(tmp_path / "x", np.ones(3), overwrite=True)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "x"), mode="r")[...], np.ones(3))
    # an array zarr-python wrote with other codecs is not appended to
    zarr.create_array(str(tmp_path / "gzip"), shape=(4,), dtype="f8", compressors=zarr.codecs.GzipCodec())
    with pytest.raises(zarrfile.ZarrFileError, match="codecs"):
        zarrfile.read_metadata(tmp_path / "gzip")
    zarr.create_array(str(tmp_path / "crc"), shape=(4,), dtype="f8", compressors=zarr.codecs.ZstdCodec(checksum=True))
    with pytest.raises(zarrfile.ZarrFileError, match="codecs"):
        zarrfile.read_metadata(tmp_path / "crc")
    meta = zarrfile.write_array(tmp_path / "y", np.zeros(3))
    meta["codecs"][-1]["configuration"]["typesize"] = 4  # not the data type's size
    zarrfile.write_metadata(tmp_path / "y", meta)
    with pytest.raises(zarrfile.ZarrFileError, match="codecs"):
        zarrfile.read_metadata(tmp_path / "y")
    for field, value in (("cname", ["lz4"]), ("shuffle", {"x": 1}), ("typesize", 8.0), ("clevel", True)):  # malformed, not a crash
        bad = json.loads(json.dumps(zarrfile.write_array(tmp_path / f"b-{field}", np.zeros(3))))
        bad["codecs"][-1]["configuration"][field] = value
        zarrfile.write_metadata(tmp_path / f"b-{field}", bad)
        with pytest.raises(zarrfile.ZarrFileError, match="codecs"):
            zarrfile.read_metadata(tmp_path / f"b-{field}")
    with pytest.raises(zarrfile.ZarrFileError, match="compressor must be one of"):
        zarrfile.write_array(tmp_path / "z", np.zeros(3), compressor="lzma")
    with pytest.raises(zarrfile.ZarrFileError, match="unreadable"):
        zarrfile.read_metadata(tmp_path / "nothing")


def test_consolidate_writes_what_zarr_python_writes(tmp_path):
    import shutil

    root = tmp_path / "a.zarr"
    group = zarr.open_group(str(root), mode="w", zarr_format=3, attributes={"kind": "program"})
    zarrfile.write_array(root / "x", np.arange(5.0), dimension_names=["i"], attributes={"units": "S"})
    group.create_group("sub", attributes={"n": 1}).create_array("y", data=np.arange(3))
    shutil.copytree(root, tmp_path / "b.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(root))
    zarrfile.consolidate(tmp_path / "b.zarr")
    assert _meta(root) == _meta(tmp_path / "b.zarr")
    opened = zarr.open_group(str(tmp_path / "b.zarr"), mode="r")
    assert opened.metadata.consolidated_metadata is not None and sorted(opened.array_keys()) == ["x"]
