"""The int8 levers' verdict: a lever pays only when it keeps the parity gate and beats the shipped int8
by more than this VM's noise."""

from __future__ import annotations

from benchmarks.bench_int8_levers import GATE, PAYS_ABOVE, verdicts


def test_verdicts_need_the_gate_and_a_real_gain():
    metrics = {"speedup_vs_int8": {"visual": {"static": PAYS_ABOVE + 0.01, "fused": 1.03},
                                   "audio": {"static": 2.0, "fused": 0.9}},
               "cosine_vs_torch": {"visual": {"static": GATE, "fused": 0.9999},
                                   "audio": {"static": GATE - 0.001, "fused": 0.9999}}}
    assert verdicts(metrics) == {"visual": {"static": "pays", "fused": "no gain"},
                                 "audio": {"static": "fails the gate", "fused": "slower"}}
