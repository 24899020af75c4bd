import pytest

from course_utils.paths import PROJECT_ROOT, data_dir


def test_the_data_folder_is_the_checkouts_unless_set(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    assert data_dir() == PROJECT_ROOT / "data"
    assert (data_dir() / "mnist" / "MD5SUMS").is_file()
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path


def test_a_missing_data_folder_names_itself_and_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError,
                       match=r"data folder .*absent does not exist\. Set COURSE_DATA_DIR"):
        data_dir()
