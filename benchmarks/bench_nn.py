"""One SGD step with momentum (forward, backward, update) of small networks, fastinit.nn on
each backend beside the same network in PyTorch CPU with the same weights:

* the small CNN of ``fastinit train --model cnn`` on digits (batch 64, 1x8x8 images);
* an MLP 784-256-256-10 on random data (batch 128);
* the cs231n three-layer convnet (conv 7x7 3->32 pad 3, ReLU, 2x2 max pool, affine 8192->100,
  ReLU, affine 100->10) on random 3x32x32 images (batch 50);
* the VGG-style CIFAR net of the layer sweep (fastinit.lab.layers.VGG_CIFAR: 3x3 convs
  3-64-64 | 128-128 | 256-256 with ReLU and a 2x2 max pool after each pair, affine
  4096->256, ReLU, affine 256->10) on random 3x32x32 images (batch 64).

    python benchmarks/bench_nn.py           # median times and per-round ratios (alternating)
    pytest --benchmark benchmarks/bench_nn.py
Target: >= 2x PyTorch per step on each.
"""
import statistics
import time

import numpy as np
import pytest
import torch

import fastinit as fi
from fastinit import nn
from fastinit.lab import train

FAST = [n for n, why in fi.backends.available().items() if why is None and n != "numpy"]


def _mlp():
    return nn.Sequential(nn.Linear(784, 256, init="he_normal"), nn.ReLU(),
                         nn.Linear(256, 256, init="he_normal"), nn.ReLU(),
                         nn.Linear(256, 10, init="xavier_normal"), seed=0, input_grad=False)


def _torch_copy(net):
    """The same network in PyTorch, with our weights."""
    layers = []
    for m in net.layers:
        if isinstance(m, nn.Linear):
            t = torch.nn.Linear(m.in_features, m.out_features)
            t.weight.data = torch.from_numpy(m.weight.data.copy())
            t.bias.data = torch.from_numpy(m.bias.data.copy())
        elif isinstance(m, nn.Conv2d):
            t = torch.nn.Conv2d(m.in_channels, m.out_channels, m.weight.shape[2:],
                                padding=m.conv_args["padding"])
            t.weight.data = torch.from_numpy(m.weight.data.copy())
            t.bias.data = torch.from_numpy(m.bias.data.copy())
        elif isinstance(m, nn.BatchNorm2d):
            t = torch.nn.BatchNorm2d(m.num_features)
        elif isinstance(m, nn.ReLU):
            t = torch.nn.ReLU()
        elif isinstance(m, nn.MaxPool2d):
            t = torch.nn.MaxPool2d(m.args[0])
        elif isinstance(m, nn.Flatten):
            t = torch.nn.Flatten()
        else:  # pragma: no cover
            raise TypeError(type(m))
        layers.append(t)
    return torch.nn.Sequential(*layers)


def _cs231n():
    return nn.Sequential(nn.Conv2d(3, 32, 7, padding=3, init="he_normal"), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(32 * 16 * 16, 100, init="he_normal"), nn.ReLU(),
                         nn.Linear(100, 10, init="xavier_normal"), seed=0, input_grad=False)


def _vgg():
    from fastinit.lab.layers import VGG_CIFAR
    layers, size, c = [], 32, 3
    for item in VGG_CIFAR:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
            size //= 2
        else:
            layers += [nn.Conv2d(item[0], item[1], 3, padding=1, init="he_normal"), nn.ReLU()]
            c = item[1]
    layers += [nn.Flatten(), nn.Linear(c * size * size, 256, init="he_normal"), nn.ReLU(),
               nn.Linear(256, 10, init="xavier_normal")]
    return nn.Sequential(*layers, seed=0, input_grad=False)


def cases():
    r = np.random.default_rng(0)
    xtr, ytr, _, _ = nn.data.digits(image=True)
    data = {"cnn digits b64": (xtr[:64], ytr[:64], lambda: train.build("cnn", "he_normal", 0)),
            "mlp 784-256-256-10 b128": (r.random((128, 784), dtype=np.float32),
                                        r.integers(0, 10, 128), _mlp),
            "cs231n convnet b50": (r.standard_normal((50, 3, 32, 32)).astype(np.float32),
                                   r.integers(0, 10, 50), _cs231n),
            "vgg cifar b64": (r.standard_normal((64, 3, 32, 32)).astype(np.float32),
                              r.integers(0, 10, 64), _vgg)}
    out = {}
    for name, (x, y, make) in data.items():
        libs = {}
        for be in FAST:
            net = make()
            opt = nn.SGD(net.parameters(), lr=0.01, momentum=0.9)
            crit = nn.SoftmaxCrossEntropy()

            def step(net=net, opt=opt, crit=crit, be=be, x=x, y=y):
                with fi.backends.use(be):
                    opt.zero_grad()
                    crit(net(x), y)
                    net.backward(crit.backward())
                    opt.step()
            libs[be] = step
        tnet = _torch_copy(make())
        topt = torch.optim.SGD(tnet.parameters(), lr=0.01, momentum=0.9)
        tx, ty = torch.from_numpy(x), torch.from_numpy(np.asarray(y, np.int64))

        def tstep(tnet=tnet, topt=topt, tx=tx, ty=ty):
            topt.zero_grad()
            torch.nn.functional.cross_entropy(tnet(tx), ty).backward()
            topt.step()
        libs["torch"] = tstep
        out[name] = libs
    return out


def check():
    """The first step's loss agrees with PyTorch's for the same weights."""
    xtr, ytr, _, _ = nn.data.digits(image=True)
    net = train.build("cnn", "he_normal", 0)
    loss = nn.SoftmaxCrossEntropy()(net(xtr[:64]), ytr[:64])
    tl = torch.nn.functional.cross_entropy(_torch_copy(train.build("cnn", "he_normal", 0))(
        torch.from_numpy(xtr[:64])), torch.from_numpy(ytr[:64]))
    assert abs(loss - tl.item()) < 1e-4 * max(1.0, abs(loss))


ALL = cases()


@pytest.mark.parametrize("case", list(ALL))
@pytest.mark.parametrize("lib", FAST + ["torch"])
def test_sgd_step(benchmark, case, lib):
    check()
    torch.set_num_threads(fi.get_num_threads())
    benchmark.group = f"nn SGD step: {case}"
    benchmark.extra_info.update(library=lib, case=case)
    benchmark(ALL[case][lib])


if __name__ == "__main__":
    # Rounds alternate the libraries (a short pause, then the best of 10 steps each); a round's
    # ratio compares steps taken within a fraction of a second of each other, so a change in
    # the host's speed between rounds (this VM's shifts by 30% over seconds) moves both sides.
    # Printed: median times, and the median and range of the per-round ratios.
    check()
    torch.set_num_threads(fi.get_num_threads())
    rounds = 15
    for case, libs in ALL.items():
        for fn in libs.values():
            fn()
        times = {lib: [] for lib in libs}
        for _ in range(rounds):
            for lib, fn in libs.items():
                time.sleep(0.02)
                best = float("inf")
                for _ in range(10):
                    t = time.perf_counter()
                    fn()
                    best = min(best, time.perf_counter() - t)
                times[lib].append(best)
        med = {lib: statistics.median(v) for lib, v in times.items()}
        ratios = [times["torch"][i] / min(times[b][i] for b in FAST) for i in range(rounds)]
        row = ", ".join(f"{lib} {t * 1e3:.2f} ms" for lib, t in med.items())
        print(f"{case:28s} {row}  -> {statistics.median(ratios):.2f}x torch "
              f"(rounds {min(ratios):.2f}-{max(ratios):.2f})")
