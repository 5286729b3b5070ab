import pytest

from utils.profile import PROFILES, SETTINGS, resolve_profile


def test_default_quick_without_cuda():
    profile = resolve_profile(None, cuda_available=False)
    assert profile.name == "quick"
    assert "aucun GPU CUDA" in profile.reason


def test_default_full_with_cuda():
    assert resolve_profile("", cuda_available=True).name == "full"


@pytest.mark.parametrize("value", ["smoke", "quick", "full", " QUICK "])
def test_variable_overrides_hardware(value):
    profile = resolve_profile(value, cuda_available=True)
    assert profile.name == value.strip().lower()
    assert "MEDIMG_PROFILE" in profile.reason


def test_invalid_profile_rejected():
    with pytest.raises(ValueError, match="n'est pas un profil valide"):
        resolve_profile("fast", cuda_available=False)


def test_describe_names_profile_and_reason():
    text = resolve_profile("smoke", cuda_available=False).describe()
    assert text.startswith("Profil : smoke")
    assert "MEDIMG_PROFILE=smoke" in text


@pytest.mark.parametrize("notebook", sorted(SETTINGS))
def test_profiles_define_same_keys(notebook):
    keys = {name: set(SETTINGS[notebook][name]) for name in PROFILES}
    assert keys["smoke"] == keys["quick"] == keys["full"]


def test_settings_unknown_notebook_rejected():
    with pytest.raises(KeyError, match="Aucun réglage"):
        resolve_profile("quick", False).settings("99_inconnu")


def test_settings_returns_profile_values():
    settings = resolve_profile("smoke", False).settings("01_modalites_et_bruit")
    assert settings.noise_repeats == SETTINGS["01_modalites_et_bruit"]["smoke"]["noise_repeats"]
