"""The words of the page and the shape of a table: how a CSV cell, a protocol, a test set and a table's title
read, and which columns make a table's groups, headline and kind. Everything else in the package builds on it.
"""

from __future__ import annotations

import html as _html
import math
import re

import pandas as pd

from k3dn.errors import InputError

#: Titles of the tables the workflow makes besides the config's paper tables (those have a title in their spec).
EXTRA_TITLES = {
    "protocol_sensitivity": "Protocol sensitivity: mean PSNR and SSIM of each method read under each protocol and "
    "prediction variant",
    "table7b_pixel_defocus": "Supplement Table 7b: defocus-map accuracy on the Pixel DP set",
    "disparity_features": "Disparity features: rank correlation of their first principal component with the true "
    "disparity",
}

#: Test sets in words (a set not listed keeps its name).
TEST_SETS = {
    "dpdd_test": "DPD-blur test set",
    "pixel_test": "Pixel DP test set (Xin et al.)",
    "ddd_syn_test": "DDD-syn test set",
    "rdpd_test": "RDPD test set",
}

#: Metric columns a table may have, with their headline header and format.
METRICS = {
    "psnr": ("PSNR (dB)", "{:.2f}"),
    "ssim": ("SSIM", "{:.3f}"),
    "mae": ("MAE", "{:.4f}"),
    "rmse": ("RMSE", "{:.4f}"),
    "lpips": ("LPIPS", "{:.3f}"),
    "seconds": ("Time (s)", "{:.3f}"),
    "params_m": ("Params (M)", "{:.2f}"),
    "gmacs": ("GMACs", "{:.1f}"),
}
#: Metrics that make a headline without PSNR a speed table.
SPEED = ("seconds", "params_m", "gmacs")
#: Group prefixes of a table's combined group (every image).
_COMBINED = ("combined", "all")
#: A commit or checksum: shortened in a cell, whole in its title.
_HASH = re.compile(r"^[0-9a-f]{16,}$")


# ----------------------------------------------------------------------------------------------------------
# Values and words
# ----------------------------------------------------------------------------------------------------------


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _text(v) -> str:
    """A CSV cell as text: empty for NaN/None."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v).strip()


def _fmt(v, spec: str = "{:.6g}") -> str:
    x = _num(v)
    return spec.format(x) if math.isfinite(x) else ""


def _short(value: str) -> str:
    return value[:12] + "…" if _HASH.match(value) else value


def _esc(s) -> str:
    return _html.escape(str(s), quote=True)


def _unique(values) -> list[str]:
    """The distinct non-empty values, a ``|``-joined one split (a table joins a metrics file's several values)."""
    out = []
    for v in values:
        for part in _text(v).split("|"):
            part = part.strip()
            if part and part != "nan" and part not in out:
                out.append(part)
    return out


def protocol_words(protocol: str) -> str:
    return {"16bit": "16-bit", "8bit": "8-bit", "linear-raw": "16-bit linear raw"}.get(protocol, protocol)


def is_external(r: dict) -> bool:
    """Whether a row's images were made outside the suite (``k3dn import-predictions``): its
    ``prediction_source``, the note a paper table writes for it, or, in a protocol-sensitivity table written before
    that table had ``prediction_source``, its weights checksum."""
    return (
        _text(r.get("prediction_source")) == "external"
        or _text(r.get("note")).startswith("external")
        or _text(r.get("weights_sha256")) == "external"
    )


def _external_label(r: dict) -> str:
    """A row's label, marked where its images were made outside the suite (never to be read as a port)."""
    label = _text(r.get("row"))
    return f"{label} (external)" if is_external(r) else label


def read_csv(path, what: str, labels=("row", "method")) -> pd.DataFrame:
    """A CSV the page shows, its ``labels`` columns read as written: a method or row literally named ``NA``,
    ``None`` or ``null`` is a name, not a missing value. ``what`` names the file in the error for an empty one."""
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise InputError(f"{what} is empty (not even a header); rerun the job that writes it", where=path) from None
    text = [c for c in labels if c in df.columns]
    if text:
        literal = pd.read_csv(path, usecols=text, dtype=str, keep_default_na=False)
        for c in text:
            df[c] = literal[c]
    return df


# ----------------------------------------------------------------------------------------------------------
# The shape of a table: groups, metrics, kind
# ----------------------------------------------------------------------------------------------------------


def _metric_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if f"{c}_paper" in df.columns]


def _split(column: str) -> tuple[str, str] | None:
    """``(group prefix, metric)`` of a metric column: ``("combined_", "psnr")``, ``("", "psnr")`` for a table with
    one group (plain names)."""
    for m in METRICS:
        if column == m:
            return "", m
        if column.endswith(f"_{m}"):
            return column[: -len(m)], m
    return None


def groups(df: pd.DataFrame) -> dict[str, list[str]]:
    """Group prefix -> its metrics, in the CSV's order."""
    out: dict[str, list[str]] = {}
    for c in _metric_columns(df):
        gm = _split(c)
        if gm:
            out.setdefault(gm[0], []).append(gm[1])
    return out


def headline_group(df: pd.DataFrame) -> str | None:
    """The prefix of the group the headline shows: the combined one (``combined_``/``all_``, or ``""`` where the
    table has one group), else the last; None for a table without published metric columns."""
    gs = groups(df)
    for g in ("", *(f"{c}_" for c in _COMBINED)):
        if g in gs:
            return g
    return list(gs)[-1] if gs else None


def headline_group_name(df: pd.DataFrame, spec: dict | None = None) -> str:
    """The name of the headline's group as the table spec gives it (``combined``, ``outdoor``); for a table with
    one group (plain column names), the spec's group, else the ``ci_group`` the table records; "" if unknown."""
    g = headline_group(df)
    if g:
        return g[:-1]
    given = (spec or {}).get("groups") or []
    if g == "" and len(given) == 1:
        return _text(given[0])
    recorded = _unique(df.get("ci_group", []))
    return recorded[0] if g == "" and len(recorded) == 1 else ""


def partial_group(df: pd.DataFrame, spec: dict | None = None) -> str:
    """The headline group's name where it is not every image of the table (``outdoor``); "" where it is (or where
    the table says nothing else)."""
    name = headline_group_name(df, spec)
    return "" if name in ("", *_COMBINED) else name


def interval_applies(df: pd.DataFrame, spec: dict | None = None) -> bool:
    """Whether the table's interval columns (``psnr_ci95_*``, ``psnr_vs_ref*``) average the images of the headline's
    group, so they may stand beside its mean: the recorded ``ci_group`` is that group. A table written before it
    recorded ``ci_group`` computed them over every image: they apply to a combined group, or to the one group of a
    table whose spec (if given) does not name another."""
    if "ci_group" in df.columns:
        recorded = _unique(df["ci_group"])
        return len(recorded) == 1 and recorded[0] == headline_group_name(df, spec)
    return headline_group(df) in ("", *(f"{c}_" for c in _COMBINED)) and not partial_group(df, spec)


def table_kind(df: pd.DataFrame) -> str:
    """``quality`` (a PSNR headline), ``speed`` or ``plain`` (any other CSV: rendered as it is, in parts)."""
    g = headline_group(df)
    if g is None or "row" not in df.columns:
        return "plain"
    metrics = groups(df)[g]
    if "psnr" in metrics:
        return "quality"
    return "speed" if any(m in SPEED for m in metrics) else "plain"


def table_title(name: str, df: pd.DataFrame, spec: dict | None = None) -> str:
    """The table's title in words: the spec's title (else one made from the name), then what the CSV says of the
    measurement: the image count and protocol of a quality table, the input size and dtype of a speed table."""
    spec = spec or {}
    title = _text(spec.get("title")) or EXTRA_TITLES.get(name)
    if not title:
        m = re.match(r"table(\d+)([a-z]?)_(.+)", name)
        title = f"Table {m[1]}{m[2]}: {m[3].replace('_', ' ')}" if m else name.replace("_", " ").capitalize()
    title = re.sub(r"\s+", " ", title).strip()
    kind = table_kind(df)
    facts = []
    if kind == "quality":
        n = sorted({int(x) for x in map(_num, df.get("n_images", [])) if math.isfinite(x)})
        if n:
            facts.append(f"{n[0]} images" if len(n) == 1 else f"{n[0]}-{n[-1]} images")
        protocols = _unique(df.get("protocol", []))
        if protocols:
            facts.append(", ".join(protocol_words(p) for p in protocols))
        part = partial_group(df, spec)
        if part:  # the table has no group of every image: its headline is one group's
            facts.append(f"headline over the {part} images")
    elif kind == "speed":
        sizes, dtypes = _unique(df.get("size", [])), _unique(df.get("dtype", []))
        if sizes:
            facts.append("input " + ", ".join(sizes))
        facts += [", ".join(dtypes)] if dtypes else []
    return title + (", " + ", ".join(facts) if facts else "")


def short_name(name: str, spec: dict | None = None) -> str:
    """``Table 9`` from a title or name; else the name."""
    m = re.search(r"Table \d+[a-z]?", _text((spec or {}).get("title"))) or re.match(r"table(\d+[a-z]?)_", name)
    if m is None:
        return name
    return m[0] if m[0].startswith("Table") else f"Table {m[1]}"
