"""Numerical reference of the market-stream features and labels, computed with pandas.

Generates a candle series (a random walk of the log price with jumps and gaps, fixed seed),
computes log returns, the EWMA volatility over a trailing window, volatility-scaled returns and
triple-barrier labels the way Lopez de Prado writes them in pandas (Advances in Financial
Machine Learning, 2018, chapter 3: `ewm(span).std()`, `searchsorted` for the vertical barrier,
the path `close[loc:t1] / close[loc] - 1` compared with the barriers), and writes
`fixture.json` beside this file. `crates/domain/tests/market_fixture.rs` checks the Rust code
against it within 1e-9; CI uses the committed fixture and never needs pandas.

Run (the install step is in README.md beside this file):

    python3 benches/market-stream/reference.py
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 16
COUNT = 400
GRANULARITY = "H1"
GRANULARITY_SECONDS = 3600
POLICY = {"span": 20.0, "window": 50, "profit_take": 1.0, "stop_loss": 1.0, "vertical": 10}


def generate(rng):
    """Hourly candles with normal shocks, occasional jumps, and gaps of 2 to 6 hours."""
    ts = pd.Timestamp("2026-01-05T00:00:00Z")
    log_price = math.log(1.0850)
    rows = []
    for _ in range(COUNT):
        shock = rng.normal(0.0, 0.0015)
        if rng.random() < 0.03:
            shock += rng.choice([-1.0, 1.0]) * rng.uniform(0.004, 0.012)  # a jump
        open_ = math.exp(log_price)
        log_price += shock
        close = math.exp(log_price)
        high = max(open_, close) * (1.0 + abs(rng.normal(0.0, 0.0004)))
        low = min(open_, close) * (1.0 - abs(rng.normal(0.0, 0.0004)))
        rows.append({
            "ts": ts,
            "o": open_,
            "h": high,
            "l": low,
            "c": close,
            "v": float(rng.integers(50, 5000)),
        })
        step = 1 if rng.random() > 0.06 else int(rng.integers(2, 7))  # a gap
        ts = ts + pd.Timedelta(seconds=GRANULARITY_SECONDS * step)
    return pd.DataFrame(rows).set_index("ts")


def ewm_std_last(window, span):
    """`ewm(span=span).std()` of the window, its last value (adjust=True, bias corrected)."""
    return pd.Series(window).ewm(span=span).std().iloc[-1]


def triple_barrier(close, vol, policy):
    """Labels of every candle: +1 / -1 / 0 by the first barrier touched, None while open."""
    horizon = pd.Timedelta(seconds=GRANULARITY_SECONDS * policy["vertical"])
    t1_loc = close.index.searchsorted(close.index + horizon)  # first candle at or after
    labels = []
    for i, loc in enumerate(close.index):
        trgt = vol.iloc[i]
        if not (trgt > 0):
            labels.append(None)
            continue
        end = t1_loc[i]
        vertical_stored = end < len(close)
        path = close.iloc[i : (end + 1 if vertical_stored else len(close))]
        rets = path / close.iloc[i] - 1.0
        upper = rets[rets > policy["profit_take"] * trgt].index.min() if policy["profit_take"] > 0 else pd.NaT
        lower = rets[rets < -policy["stop_loss"] * trgt].index.min() if policy["stop_loss"] > 0 else pd.NaT
        vertical = close.index[end] if vertical_stored else pd.NaT
        touches = [(t, kind) for t, kind in [(upper, "upper"), (lower, "lower")] if not pd.isna(t)]
        if touches:
            t, kind = min(touches)
            if pd.isna(vertical) or t <= vertical:
                labels.append({
                    "value": 1 if kind == "upper" else -1,
                    "barrier": kind,
                    "resolved_at": t,
                    "ret": float(rets.loc[t]),
                    "target": float(trgt),
                })
                continue
        if pd.isna(vertical):
            labels.append(None)
            continue
        labels.append({
            "value": 0,
            "barrier": "vertical",
            "resolved_at": vertical,
            "ret": float(rets.loc[vertical]),
            "target": float(trgt),
        })
    return labels


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def number(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def main():
    rng = np.random.default_rng(SEED)
    candles = generate(rng)
    close = candles["c"]
    ret = np.log(close).diff()
    vol = ret.rolling(POLICY["window"]).apply(lambda w: ewm_std_last(w, POLICY["span"]), raw=True)
    scaled = ret / vol.shift(1)
    labels = triple_barrier(close, vol, POLICY)
    expected = []
    for i, t in enumerate(candles.index):
        label = labels[i]
        if label is not None:
            label = dict(label, resolved_at=iso(label["resolved_at"]))
        expected.append({
            "ts": iso(t),
            "ret": number(ret.iloc[i]),
            "vol": number(vol.iloc[i]),
            "scaled": number(scaled.iloc[i]),
            "label": label,
        })
    fixture = {
        "generator": f"benches/market-stream/reference.py, seed {SEED}, pandas {pd.__version__}",
        "granularity": GRANULARITY,
        "policy": POLICY,
        "candles": [
            {"ts": iso(t), **{k: float(row[k]) for k in ["o", "h", "l", "c", "v"]}}
            for t, row in candles.iterrows()
        ],
        "expected": expected,
    }
    out = Path(__file__).with_name("fixture.json")
    out.write_text(json.dumps(fixture, indent=1) + "\n")
    resolved = sum(1 for l in labels if l is not None)
    print(f"wrote {out}: {len(candles)} candles, {resolved} labels resolved")


if __name__ == "__main__":
    main()
