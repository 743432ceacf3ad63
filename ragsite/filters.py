"""Filter forms of the staff pages (audit trail, feedback): a period of whole days, read the same way."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django import forms
from django.utils import timezone


def _midnight(day: date | None) -> datetime | None:
    return None if day is None else timezone.make_aware(datetime.combine(day, time.min))


class PeriodForm(forms.Form):
    """A GET filter form with `since` and `until`, both days inclusive."""

    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def problems(self) -> str:
        """What cannot be read, for the error message of an invalid form."""
        listed = "; ".join(f"{field}: {' '.join(str(e) for e in errors)}" for field, errors in self.errors.items())
        return f"The filters cannot be read ({listed}): dates are YYYY-MM-DD"

    def period(self) -> tuple[datetime | None, datetime | None]:
        """[start of `since`, start of the day after `until`), in the current time zone."""
        until = _midnight(self.cleaned_data.get("until"))
        return _midnight(self.cleaned_data.get("since")), until + timedelta(days=1) if until else None
