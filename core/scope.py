"""Who acts, and in which project."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from components_app.models import Project


@dataclass(frozen=True)
class Scope:
    """Who acts, and in which project. Nothing outside ``project`` is visible to a service."""

    user: AbstractBaseUser
    project: Project

    @property
    def project_id(self):
        return self.project.pk
