import pydicom
import pytest

from utils.samples import dicom_sample, nifti_sample


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG1_J2KI.dcm", "693_UNCR.dcm", "CT_small.dcm", "color3d_jpeg_baseline.dcm"])
def test_dicom_samples_installed(name):
    assert pydicom.dcmread(dicom_sample(name), stop_before_pixels=True).Modality


def test_compressed_sample_decodes():
    assert pydicom.dcmread(dicom_sample("RG1_J2KR.dcm")).pixel_array.shape == (1955, 1841)


def test_missing_sample_message():
    with pytest.raises(FileNotFoundError, match="pip install pydicom-data"):
        dicom_sample("absent.dcm")


def test_nifti_sample_installed():
    assert nifti_sample("anatomical.nii").is_file()
