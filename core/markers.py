"""The pluggy markers for modelway hooks; plugins import `hookimpl` from `modelway`."""

import pluggy

PROJECT = "modelway"
hookimpl = pluggy.HookimplMarker(PROJECT)
