"""The Python peer of market-stream's benchmark: a long-lived Firestore listener written the way
the seed's streaming system writes it (google-cloud-firestore `on_snapshot`, one listener per
stream, the features and labels computed with pandas), so that one run can compare the two on
the same emulator.

For each stream `candles/{instrument}/{granularity}` it listens to the collection; every added
or modified complete candle is appended to the stream's in-memory series, its log return, EWMA
volatility (`ewm(span).std()` over the last `window` returns, as `reference.py`) and
volatility-scaled return are computed, the triple-barrier labels of the open candles are
re-evaluated on the series' tail, and one batch writes the candle's bar and the labels that
resolved to `streams/{instrument}_{granularity}/bars/{ts}`: the layout market-stream writes,
so the benchmark measures both the same way (the bar's create time minus the candle's update
time).

What it leaves out, as the seed's listener does: state lives in the process (a restart or a
second instance starts from nothing), arrival order is trusted (a late or corrected candle is
not recomputed), nothing is exactly once, and nothing is dead-lettered.

Run by `scripts/bench-market-stream.sh` (which installs `requirements.txt` into a virtualenv):

    FIRESTORE_EMULATOR_HOST=127.0.0.1:8080 python listener.py --project demo-market-py \
        --instruments EUR_USD,GBP_USD --granularity H1 --seconds 3600 --expect 400

It prints `ready` once every listener has its first snapshot, then, when `--expect` candles
are processed (or `--timeout` passes), one JSON line with its counts, CPU seconds and peak
resident memory, and exits.
"""

import argparse
import json
import math
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from google.cloud import firestore

sys.path.insert(0, str(Path(__file__).parent))
import reference  # noqa: E402  (the same pandas computation the fixture comes from)

POLICY = reference.POLICY


class Stream:
    """One stream's in-memory series and what has been written of it."""

    def __init__(self, db, instrument, granularity, seconds):
        self.id = f"{instrument}_{granularity}"
        self.bars = db.collection("streams").document(self.id).collection("bars")
        self.seconds = seconds
        self.close = {}  # ts -> close
        self.vol = {}  # ts -> volatility (NaN until the window is full)
        self.labelled = set()  # ts whose label is written

    def apply(self, db, doc_id, data, counts):
        ts = pd.Timestamp(doc_id)
        self.close[ts] = float(data["c"])
        index = sorted(self.close)
        tail = index[-(POLICY["window"] + 1):]
        close = pd.Series([self.close[t] for t in tail], index=pd.DatetimeIndex(tail))
        ret = np.log(close).diff()
        returns = ret.dropna()
        vol = (
            reference.ewm_std_last(returns.iloc[-POLICY["window"]:].to_numpy(), POLICY["span"])
            if len(returns) >= POLICY["window"]
            else math.nan
        )
        self.vol[ts] = vol
        previous = self.vol.get(index[-2], math.nan) if len(index) > 1 else math.nan
        last_ret = ret.iloc[-1] if len(ret) > 1 else math.nan
        scaled = last_ret / previous if previous and not math.isnan(previous) else math.nan

        batch = db.batch()
        batch.set(self.bars.document(doc_id), {
            **{k: float(data[k]) for k in ["o", "h", "l", "c", "v"]},
            "ts": doc_id,
            "ret": reference.number(last_ret),
            "vol": reference.number(vol),
            "scaled": reference.number(scaled),
        })
        writes = 1
        # The open candles' labels, on the tail that can still resolve them.
        horizon = POLICY["vertical"] * 4 + 2
        recent = index[-horizon:]
        open_ = [t for t in recent if t not in self.labelled and self.vol.get(t, math.nan) > 0]
        if open_:
            closes = pd.Series([self.close[t] for t in recent], index=pd.DatetimeIndex(recent))
            vols = pd.Series([self.vol.get(t, math.nan) for t in recent], index=closes.index)
            for t, label in zip(recent, reference.triple_barrier(closes, vols, POLICY)):
                if label is None or t in self.labelled or t not in open_:
                    continue
                label = dict(label, resolved_at=reference.iso(label["resolved_at"]))
                batch.set(self.bars.document(reference.iso(t)), {"label": label}, merge=True)
                self.labelled.add(t)
                writes += 1
        batch.commit()
        counts["writes"] += writes
        counts["commits"] += 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True)
    parser.add_argument("--instruments", required=True)
    parser.add_argument("--granularity", default="H1")
    parser.add_argument("--seconds", type=int, default=3600, help="the granularity in seconds")
    parser.add_argument("--expect", type=int, required=True, help="candles to process")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    reference.GRANULARITY_SECONDS = args.seconds  # triple_barrier's vertical barrier

    db = firestore.Client(project=args.project)
    counts = {"processed": 0, "reads": 0, "writes": 0, "commits": 0, "errors": 0}
    lock = threading.Lock()
    done = threading.Event()
    synced = set()
    watches = []

    def listener(stream):
        def on_snapshot(_docs, changes, _read_time):
            with lock:
                synced.add(stream.id)
                for change in changes:
                    counts["reads"] += 1
                    if change.type.name == "REMOVED":
                        continue
                    data = change.document.to_dict()
                    if not data.get("complete", False):
                        continue
                    try:
                        stream.apply(db, change.document.id, data, counts)
                        counts["processed"] += 1
                    except Exception as e:  # the seed's listener logs and goes on
                        counts["errors"] += 1
                        print(f"error on {stream.id}/{change.document.id}: {e}", file=sys.stderr)
                if counts["processed"] >= args.expect:
                    done.set()

        return on_snapshot

    instruments = [i for i in args.instruments.split(",") if i]
    for instrument in instruments:
        stream = Stream(db, instrument, args.granularity, args.seconds)
        collection = db.collection("candles").document(instrument).collection(args.granularity)
        watches.append(collection.on_snapshot(listener(stream)))
    deadline = time.monotonic() + 60
    while len(synced) < len(instruments):
        if time.monotonic() > deadline:
            sys.exit("the listeners did not get their first snapshot within 60 s")
        time.sleep(0.05)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_ready = usage.ru_utime + usage.ru_stime
    print("ready", flush=True)

    finished = done.wait(args.timeout)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    for watch in watches:
        watch.unsubscribe()
    with lock:
        print(json.dumps({
            **counts,
            "finished": finished,
            "cpu_seconds": usage.ru_utime + usage.ru_stime - cpu_ready,
            "max_rss_kib": usage.ru_maxrss,
        }), flush=True)


if __name__ == "__main__":
    main()
