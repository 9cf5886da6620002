"""Edge filtering, pure: deadband with heartbeat, window features of high-rate signals, and
exception passthrough (ingest layer). Configured per signal class by a versioned YAML file."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from plantlake.core.errors import ConfigError


@dataclass(frozen=True)
class Deadband:
    """Send a value only when it moved more than the band since the last sent one, or when
    `max_silence_ms` passed without sending (a heartbeat, so silence never means "no data")."""

    value: float
    mode: str = "absolute"  # absolute | percent (of the last sent value)
    max_silence_ms: int = 60_000

    def band(self, last_sent: float) -> float:
        return self.value if self.mode == "absolute" else abs(last_sent) * self.value / 100.0


@dataclass
class DeadbandState:
    last_value: float | None = None
    last_time_ms: int = 0
    last_good: bool = True


def deadband_passes(
    spec: Deadband, state: DeadbandState, value: float, t_ms: int, good: bool
) -> bool:
    """Whether a value passes; updates `state` when it does.

    Invariant (tested as a property): for every value that does not pass, holding the last sent
    value reconstructs it within the band.
    """
    passes = (
        state.last_value is None
        or good != state.last_good  # a quality change is news
        or math.isnan(value) != math.isnan(state.last_value)
        or (not math.isnan(value) and abs(value - state.last_value) > spec.band(state.last_value))
        or t_ms - state.last_time_ms >= spec.max_silence_ms
    )
    if passes:
        state.last_value, state.last_time_ms, state.last_good = value, t_ms, good
    return passes


@dataclass(frozen=True)
class Window:
    """Features of a high-rate signal per window instead of its raw samples."""

    seconds: float = 1.0
    bands_hz: tuple[tuple[float, float], ...] = ((0, 50), (50, 200), (200, 500), (500, 1000))


def window_features(
    samples: np.ndarray, rate_hz: float, bands_hz: Sequence[tuple[float, float]]
) -> dict[str, float]:
    """RMS, peak, crest factor and FFT band energies of one window of samples.

    Band energies are mean-square contributions (Parseval), so over bands covering 0..Nyquist
    they add up to rms**2 — a bearing tone shows as energy moving into its band.
    """
    n = len(samples)
    rms = float(np.sqrt(np.mean(np.square(samples))))
    peak = float(np.max(np.abs(samples)))
    spectrum = np.abs(np.fft.rfft(samples)) ** 2 / n**2
    spectrum[1 : (n + 1) // 2] *= 2  # fold negative frequencies (not DC, not Nyquist)
    freqs = np.fft.rfftfreq(n, d=1.0 / rate_hz)
    features = {"rms": rms, "peak": peak, "crest": peak / rms if rms > 0 else 0.0}
    for low, high in bands_hz:
        in_band = (freqs >= low) & (freqs < high)
        features[f"band_{int(low)}_{int(high)}"] = float(np.sum(spectrum[in_band]))
    return features


@dataclass(frozen=True)
class Passthrough:
    """When `feature` goes above `above`, stream raw full-rate samples for `minutes`."""

    feature: str = "rms"
    above: float = 6.0
    minutes: float = 2.0


@dataclass(frozen=True)
class SignalClass:
    name: str
    quantities: tuple[str, ...]
    deadband: Deadband | None = None
    window: Window | None = None
    passthrough: Passthrough | None = None


@dataclass(frozen=True)
class FilterConfig:
    """A versioned filter configuration; every record it lets through carries `version`."""

    version: str
    classes: tuple[SignalClass, ...] = field(default_factory=tuple)

    def class_for(self, quantity: str) -> SignalClass | None:
        for klass in self.classes:
            if quantity in klass.quantities:
                return klass
        return None


class FilterConfigError(ValueError):
    pass


def parse_filter_config(data: Mapping, *, source: str = "<mapping>") -> FilterConfig:
    """Unpack a filter configuration mapping (as read from YAML); errors name the entry."""
    if not isinstance(data, Mapping) or "version" not in data or "classes" not in data:
        raise FilterConfigError(f"{source}: needs top-level 'version' and 'classes'")
    classes = []
    seen: set[str] = set()
    for name, body in data["classes"].items():
        where = f"{source}: classes.{name}"
        known = {"quantities", "deadband", "window", "passthrough"}
        if unknown := set(body) - known:
            raise FilterConfigError(f"{where}: unknown keys {sorted(unknown)}")
        quantities = tuple(body.get("quantities") or ())
        if not quantities:
            raise FilterConfigError(f"{where}: 'quantities' must list at least one quantity")
        if overlap := seen & set(quantities):
            raise FilterConfigError(
                f"{where}: quantities {sorted(overlap)} already in another class"
            )
        seen |= set(quantities)
        try:
            deadband = Deadband(**body["deadband"]) if "deadband" in body else None
            window = None
            if "window" in body:
                w = dict(body["window"])
                if "bands_hz" in w:
                    w["bands_hz"] = tuple((float(lo), float(hi)) for lo, hi in w["bands_hz"])
                window = Window(**w)
            passthrough = Passthrough(**body["passthrough"]) if "passthrough" in body else None
        except TypeError as exc:
            raise FilterConfigError(f"{where}: {exc}") from exc
        if deadband and deadband.mode not in ("absolute", "percent"):
            raise FilterConfigError(f"{where}.deadband.mode: use 'absolute' or 'percent'")
        if deadband and deadband.value < 0:
            raise FilterConfigError(f"{where}.deadband.value: must not be negative")
        if passthrough and not window:
            raise FilterConfigError(f"{where}: passthrough needs a window to compute its feature")
        classes.append(SignalClass(name, quantities, deadband, window, passthrough))
    return FilterConfig(version=str(data["version"]), classes=tuple(classes))


DEFAULT_CONFIG = Path(__file__).parent / "config" / "filters.yaml"


def load_filter_config(path: Path | None = None) -> FilterConfig:
    """Read a filter YAML file (default: the shipped one) and unpack it."""
    path = path or DEFAULT_CONFIG
    try:
        data = yaml.safe_load(path.read_text())
        return parse_filter_config(data, source=str(path))
    except (OSError, yaml.YAMLError, FilterConfigError) as exc:
        raise ConfigError(f"Edge filter config {path}: {exc}") from exc


def window_feature_names(filters: FilterConfig) -> tuple[str, ...]:
    """Window feature names the edge computes for vibration (the asset registry lists each as a signal)."""
    klass = filters.class_for("vibration")
    if klass is None or klass.window is None:
        return ()
    bands = tuple(f"band_{int(lo)}_{int(hi)}" for lo, hi in klass.window.bands_hz)
    return ("rms", "peak", "crest", *bands)


def default_window_features() -> tuple[str, ...]:
    """The window feature names of the shipped filter config."""
    return window_feature_names(load_filter_config())
