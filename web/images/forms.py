from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from web.images.validation import CheckedImage, check_upload


class UploadForm(forms.Form):
    image = forms.FileField(
        allow_empty_file=True,  # check_upload says "empty" in its own words
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png,image/webp,image/gif"}),
        help_text=f"JPEG, PNG, WebP or GIF, up to {settings.IMAGE_MAX_BYTES // 2**20} MB.",
    )

    checked: CheckedImage

    def clean_image(self) -> UploadedFile:
        upload = self.cleaned_data["image"]
        self.checked = check_upload(upload)
        return upload
