import os

import pytest

from sessrec import layout, storage
from sessrec.errors import NotFoundError, SessrecError, StorageError


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    target = str(tmp_path / "a" / "b.bin")
    storage.write_bytes(target, b"old")
    storage.write_bytes(target, b"new")
    assert storage.read_bytes(target) == b"new"
    assert os.listdir(tmp_path / "a") == ["b.bin"]


def test_failed_write_keeps_the_old_content(tmp_path, monkeypatch):
    target = str(tmp_path / "b.bin")
    storage.write_bytes(target, b"old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StorageError, match="No space left"):
        storage.write_bytes(target, b"new")
    assert storage.read_bytes(target) == b"old"
    assert os.listdir(tmp_path) == ["b.bin"]


def test_create_exclusive(tmp_path):
    target = str(tmp_path / "claim")
    assert storage.create_exclusive(target, b"first")
    assert not storage.create_exclusive(target, b"second")
    assert storage.read_bytes(target) == b"first"
    assert os.listdir(tmp_path) == ["claim"]


def test_listing_and_missing(tmp_path):
    storage.write_bytes(str(tmp_path / "x" / "1"), b"1")
    storage.write_bytes(str(tmp_path / "x" / "y" / "2"), b"22")
    assert storage.list_children(str(tmp_path / "x")) == ["1", "y"]
    assert list(storage.walk_files(str(tmp_path / "x"))) == ["1", "y/2"]
    assert list(storage.walk_file_sizes(str(tmp_path / "x"))) == [("1", 1), ("y/2", 2)]
    assert storage.list_children(str(tmp_path / "nothing")) == []
    with pytest.raises(NotFoundError):
        storage.read_bytes(str(tmp_path / "nothing"))
    with pytest.raises(StorageError, match="folder"):
        storage.read_bytes(str(tmp_path / "x"))
    storage.delete(str(tmp_path / "x" / "1"))
    storage.delete(str(tmp_path / "x" / "1"))  # gone already: nothing to do
    assert storage.list_children(str(tmp_path / "x")) == ["y"]


def test_join():
    assert storage.join("s3://bucket/prefix/", "sweeps", "a") == "s3://bucket/prefix/sweeps/a"
    assert storage.join("/tmp/root", "sweeps", "a") == "/tmp/root/sweeps/a"


@pytest.mark.parametrize("name", ["../etc", "a/b", "A", "-x", "x-", "", "a" * 41, "a b", "ünï"])
def test_names_are_slugs_never_paths(name):
    with pytest.raises(SessrecError, match="invalid sweep id"):
        layout.sweep_dir("/root", name)


def test_valid_names():
    assert layout.sweep_dir("/root", "tiny-20261123-1200-ab12") == "/root/sweeps/tiny-20261123-1200-ab12"


def test_new_files_get_the_usual_permissions(tmp_path):
    target = tmp_path / "f"
    storage.write_bytes(str(target), b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_write_under_something_that_is_not_a_folder_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    for uri in ("/dev/null/index.html", str(tmp_path / "file" / "a" / "b.json")):
        with pytest.raises(StorageError, match="not a folder") as info:
            storage.write_bytes(uri, b"{}")
        assert "\n" not in str(info.value)


def test_a_symlink_inside_the_storage_root_cannot_carry_a_write_outside_it(tmp_path):
    from sessrec.settings import Settings

    root, outside = tmp_path / "store", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "datasets").symlink_to(outside, target_is_directory=True)
    Settings(storage=str(root))  # the root writes are confined to
    for write in (storage.write_bytes, storage.create_exclusive):
        with pytest.raises(StorageError, match="outside the storage root") as info:
            write(str(root / "datasets" / "demo" / "manifest.json"), b"{}")
        assert "\n" not in str(info.value)
    assert list(outside.iterdir()) == []
    # A file that is itself a link is replaced, never written through; folders in the root are fine.
    (root / "models").mkdir()
    target = outside / "victim.json"
    target.write_text("keep")
    (root / "models" / "m.json").symlink_to(target)
    storage.write_bytes(str(root / "models" / "m.json"), b"{}")
    assert target.read_text() == "keep" and (root / "models" / "m.json").read_bytes() == b"{}"
    # A root that is itself a symlink is followed: the link is the user's own choice.
    linked_root = tmp_path / "linked"
    linked_root.symlink_to(root, target_is_directory=True)
    Settings(storage=str(linked_root))
    storage.write_bytes(str(linked_root / "models" / "n.json"), b"{}")
    assert (root / "models" / "n.json").exists()


def test_stored_documents_are_bounded_but_data_files_are_not(tmp_path):
    big = b"[" + b'"x", ' * (storage.MAX_DOCUMENT_BYTES // 5) + b'"x"]\n'
    for name in ("manifest.json", "spec.yaml"):
        (tmp_path / name).write_bytes(big)
        with pytest.raises(StorageError, match="larger than the 1 MiB limit"):
            storage.read_bytes(str(tmp_path / name))
    (tmp_path / "sessions.json").write_bytes(big)  # a user's JSONL sessions: data, any size
    assert storage.read_bytes(str(tmp_path / "sessions.json")) == big
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(StorageError, match="not a regular file"):  # refused, not waited on
        storage.read_bytes(str(fifo))
