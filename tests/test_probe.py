"""nn.Probe: what it records, its histograms (nothing piled into the edge bins, ReLU's zeros
counted apart), its printable table, and its help."""
import numpy as np
import pytest

from fastinit import nn


def _net():
    return nn.Sequential(nn.Linear(8, 16, init="he_normal"), nn.ReLU(),
                         nn.Linear(16, 4, init="xavier_normal"), nn.Tanh(), seed=0)


def test_histograms_do_not_pile_outliers_into_the_edge_bins():
    net = nn.Sequential(nn.Linear(4, 64, init=("normal", {"std": 10.0})), nn.Tanh(),
                        nn.Linear(64, 64, init="he_normal"), nn.ReLU(), seed=0)
    probe = nn.Probe(net, bins=np.linspace(-0.5, 0.5, 11))
    x = np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32)
    y = net(x)
    lin0, tanh, lin1, relu = probe.records
    y0 = net[0](x)            # the first layer's output again (a probe record is appended)
    inside = (np.abs(y0) <= 0.5).mean()
    assert lin0["hist"].sum() == pytest.approx(inside * y0.size)
    assert lin0["below"] + lin0["above"] == pytest.approx(1 - inside)
    assert lin0["below"] > 0.3 and lin0["above"] > 0.3    # std 10 weights: mostly outside
    # ReLU: zeros counted apart, the histogram holds the positive values only
    assert relu["zeros"] == pytest.approx((y == 0).mean())
    positive = int((y > 0).sum())
    assert relu["hist"].sum() == (y > 0).sum() - (y > 0.5).sum()
    assert relu["above"] * positive == pytest.approx((y > 0.5).sum()) and relu["below"] == 0.0


def test_table_is_the_last_pass_and_prints():
    net = _net()
    probe = nn.Probe(net)
    x = np.ones((5, 8), np.float32)
    for scale in (1.0, 2.0, 3.0):   # three passes, no next_step(): all records say step 0
        net(x * scale)
    table = probe.table()
    assert [layer for layer, _ in table] == ["0:Linear", "1:ReLU", "2:Linear", "3:Tanh"]
    assert len(probe.records) == 12 and len(table) == 4
    last = [r["std"] for r in probe.records[-4:]]
    assert [v for _, v in table] == last
    text = str(table)
    assert text.splitlines()[0].split() == ["layer", "std"] and "0:Linear" in text
    assert len(text.splitlines()) == 5
    dead = probe.table(key="dead")
    assert dict(dead)["1:ReLU"] is not None and dict(dead)["0:Linear"] is None
    assert "-" in str(dead)      # a layer without the statistic prints a dash
    with pytest.raises(ValueError, match="phase"):
        probe.table(phase="sideways")


def test_table_by_step_and_backward():
    net = _net()
    probe = nn.Probe(net)
    crit = nn.SoftmaxCrossEntropy()
    x, y = np.ones((5, 8), np.float32), np.arange(5) % 4
    for _ in range(2):
        crit(net(x), y)
        net.backward(crit.backward())
        probe.next_step()
    assert [layer for layer, _ in probe.table(step=0)] == ["0:Linear", "1:ReLU", "2:Linear",
                                                           "3:Tanh"]
    back = probe.table("backward")
    assert back.key == "grad_std" and all(v >= 0 for _, v in back)
    assert probe.table(step=7) == []
    assert str(probe.table(step=7)) == "(no records)"


def test_help_is_readable():
    doc = nn.Probe.__doc__
    assert "Per-layer statistics" in doc and "next_step" in doc and "table" in doc
    import inspect
    sig = str(inspect.signature(nn.Probe))
    assert "array" not in sig and len(sig) < 80, sig
    with pytest.raises(ValueError, match="bins"):
        nn.Probe(_net(), bins=[1.0, 0.0])
