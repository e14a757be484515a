"""Events config: TOML [events] section, environment overrides, Yeti's fallbacks."""

from __future__ import annotations

import logging

import pytest

from shmbus.config import EventsConfig, load_events_config


def write(tmp_path, text):
    p = tmp_path / "yeti.toml"
    p.write_text(text)
    return p


def test_defaults_are_yeti_64_mib_and_0_9():
    cfg = load_events_config(env={})
    assert cfg == EventsConfig(bus="yeti", memory_limit=64, keep_ratio=0.9)
    assert cfg.memory_limit_bytes == 64 << 20
    assert cfg.bus_kwargs() == {"memory_limit": 64 << 20, "keep_ratio": 0.9}


def test_toml_events_section_is_read(tmp_path):
    p = write(tmp_path, '[redis]\nhost = "x"\n[events]\nbus = "mybus"\nmemory_limit = 128\nkeep_ratio = 0.5\n')
    assert load_events_config(p, env={}) == EventsConfig(bus="mybus", memory_limit=128, keep_ratio=0.5)


def test_environment_wins_over_the_file(tmp_path):
    p = write(tmp_path, "[events]\nmemory_limit = 128\nkeep_ratio = 0.5\n")
    env = {"SHMBUS_EVENTS_MEMORY_LIMIT": "256", "SHMBUS_EVENTS_KEEP_RATIO": "0.75"}
    assert load_events_config(p, env=env) == EventsConfig(memory_limit=256, keep_ratio=0.75)


def test_config_path_comes_from_shmbus_config(tmp_path):
    p = write(tmp_path, "[events]\nmemory_limit = 100\n")
    assert load_events_config(env={"SHMBUS_CONFIG": str(p)}).memory_limit == 100


@pytest.mark.parametrize("raw", [0, 1, 63, -5, "32", "12.5"])
def test_memory_limit_below_64_becomes_64_and_is_logged(raw, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="shmbus.config"):
        cfg = load_events_config(env={"SHMBUS_EVENTS_MEMORY_LIMIT": str(raw)})
    assert cfg.memory_limit == 64
    assert "memory_limit" in caplog.text and "falling back to 64" in caplog.text


@pytest.mark.parametrize("raw", ["lots", "", "nan", True])
def test_memory_limit_that_is_not_a_number_becomes_64_and_is_logged(raw, tmp_path, caplog):
    p = write(tmp_path, f"[events]\nmemory_limit = {raw!r}\n".replace("True", "true"))
    with caplog.at_level(logging.WARNING, logger="shmbus.config"):
        assert load_events_config(p, env={}).memory_limit == 64
    assert "falling back to 64" in caplog.text


@pytest.mark.parametrize("raw", ["0", "1", "1.5", "-0.1", "abc", "nan", "inf"])
def test_keep_ratio_outside_the_open_interval_becomes_0_9_and_is_logged(raw, caplog):
    with caplog.at_level(logging.WARNING, logger="shmbus.config"):
        cfg = load_events_config(env={"SHMBUS_EVENTS_KEEP_RATIO": raw})
    assert cfg.keep_ratio == 0.9
    assert "keep_ratio" in caplog.text and "falling back to 0.9" in caplog.text


def test_valid_values_are_kept_without_a_warning(tmp_path, caplog):
    p = write(tmp_path, "[events]\nmemory_limit = 64\nkeep_ratio = 0.1\n")
    with caplog.at_level(logging.WARNING, logger="shmbus.config"):
        cfg = load_events_config(p, env={"SHMBUS_EVENTS_MEMORY_LIMIT": " 512 "})
    assert (cfg.memory_limit, cfg.keep_ratio) == (512, 0.1)
    assert caplog.text == ""


def test_file_without_an_events_section_gives_defaults(tmp_path):
    p = write(tmp_path, '[redis]\nhost = "localhost"\n')
    assert load_events_config(p, env={}) == EventsConfig()


def test_missing_or_malformed_files_raise(tmp_path):
    with pytest.raises(OSError):
        load_events_config(tmp_path / "missing.toml", env={})
    with pytest.raises(ValueError):
        load_events_config(write(tmp_path, "[events\n"), env={})
