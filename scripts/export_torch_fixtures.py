#!/usr/bin/env python3
"""Regenerates the real torch.onnx exports of the exporter corpus (Tests/EndToEnd/fixtures/torch/).

  python scripts/export_torch_fixtures.py    # in an environment with torch, onnx and onnxscript

Each fixture is a tiny model (16 → 32 → 8 or so, a few KB) exported by torch.onnx itself, the legacy
TorchScript exporter (dynamo=False) and the default dynamo exporter, into fixtures/torch/<name>/model.onnx
(+ model.onnx.data when saved with external data). The tests read the committed files and never need torch;
Tests/EndToEnd/exporter_corpus.py lists what each one exercises. Deterministic up to the torch version, which
is recorded in each model's producer_version.
"""

import contextlib
import io
import pathlib
import shutil
import warnings

import onnx
import torch
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "Tests" / "EndToEnd" / "fixtures" / "torch"


class ViewNormMLP(nn.Module):
    """view(x.size(0), -1), Linear, BatchNorm1d, ReLU, Dropout, LayerNorm, GELU, SiLU, Linear, log_softmax.
    The norm layers keep their fresh parameters, so the legacy exporter aliases equal ones with Identity."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.bn = nn.BatchNorm1d(32)
        self.drop = nn.Dropout(0.25)
        self.norm = nn.LayerNorm(32)
        self.act = nn.GELU()
        self.silu = nn.SiLU()
        self.fc2 = nn.Linear(32, 8)

    def forward(self, x):
        x = x.view(x.size(0), -1)
        h = self.drop(torch.relu(self.bn(self.fc1(x))))
        h = self.silu(self.act(self.norm(h)))
        return torch.log_softmax(self.fc2(h), dim=-1)


class BatchNormMLP(nn.Module):
    """Linear, BatchNorm1d with trained-looking statistics, ReLU, Dropout, Linear, softmax."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.bn = nn.BatchNorm1d(32)
        self.drop = nn.Dropout(0.25)
        self.fc2 = nn.Linear(32, 8)
        with torch.no_grad():
            self.bn.running_mean.normal_(0, 0.3)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.normal_(1.0, 0.2)
            self.bn.bias.normal_(0, 0.2)

    def forward(self, x):
        return torch.softmax(self.fc2(self.drop(torch.relu(self.bn(self.fc1(x))))), dim=1)


class TabularMLP(nn.Module):
    """Three inputs (FP32, INT64 codes, FP32) concatenated; returns probabilities and arg-max labels."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, numeric, codes, flags):
        h = torch.cat([numeric, codes.float(), flags], dim=1)
        probs = torch.softmax(self.fc2(torch.relu(self.fc1(h))), dim=-1)
        return probs, probs.argmax(dim=1)


class RankThreeMLP(nn.Module):
    """Linear without bias, then a Linear applied to an unsqueezed [N, 1, F] tensor, squeeze, Linear."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(16, 32, bias=False)
        self.b = nn.Linear(32, 24)
        self.c = nn.Linear(24, 4)

    def forward(self, x):
        h = torch.relu(self.a(x)).unsqueeze(1)
        return self.c(torch.tanh(self.b(h)).squeeze(1))


class FlattenMLP(nn.Module):
    """nn.Flatten over an [N, 4, 5] input, Linear, Tanh, Linear."""

    def __init__(self):
        super().__init__()
        self.flat = nn.Flatten()
        self.fc1 = nn.Linear(20, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(self.flat(x))))


class ActivationMLP(nn.Module):
    """Five 16-wide Linears between pairs of activations (ReLU6, Hardswish, Hardsigmoid, ELU, SELU, PReLU,
    Softplus, Mish, Tanh, LeakyReLU), a clamped head, and exp(-sum|x|) added on."""

    def __init__(self):
        super().__init__()
        self.fc = nn.ModuleList([nn.Linear(16, 16) for _ in range(5)])
        self.head = nn.Linear(16, 4)
        self.acts = nn.ModuleList([nn.ReLU6(), nn.Hardswish(), nn.Hardsigmoid(), nn.ELU(), nn.SELU(), nn.PReLU(),
                                   nn.Softplus(), nn.Mish(), nn.Tanh(), nn.LeakyReLU(0.1)])

    def forward(self, x):
        for i, fc in enumerate(self.fc):
            x = self.acts[2 * i + 1](self.acts[2 * i](fc(x)))
        return self.head(x).clamp(-3, 3) * 2 + x.abs().sum(dim=1, keepdim=True).neg().exp()


class LSTMHead(nn.Module):
    """nn.LSTM(8, 16, batch_first=True) over [N, 5, 8], a Linear on the last hidden state (to be refused)."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, batch_first=True)
        self.fc = nn.Linear(16, 2)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.fc(h[-1])


class ConvHead(nn.Module):
    """Conv1d(2, 4, 3) over [N, 2, 16], ReLU, flatten, Linear (to be refused)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3, padding=1)
        self.fc = nn.Linear(64, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def legacy(name, model, args, opset, input_names, output_names=None, dynamic=None):
    folder = OUT / name
    folder.mkdir(parents=True)
    axes = dynamic or {n: {0: "batch_size"} for n in input_names + (output_names or [])}
    torch.onnx.export(model, args, str(folder / "model.onnx"), dynamo=False, opset_version=opset,
                      input_names=input_names, output_names=output_names, dynamic_axes=axes)


def dynamo(name, model, args, dim=None, opset=None, external_data=False):
    folder = OUT / name
    folder.mkdir(parents=True)
    dim = dim or torch.export.Dim("batch")
    kwargs = {"opset_version": opset} if opset else {}
    with contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(model, args, dynamo=True, dynamic_shapes=tuple({0: dim} for _ in args), **kwargs)
    program.save(str(folder / "model.onnx"), external_data=external_data)
    # The dynamo exporter records each node's stack trace; keep this machine's paths out of it.
    path = folder / "model.onnx"
    model = onnx.load_model(str(path), load_external_data=False)
    site_packages = str(pathlib.Path(torch.__file__).parents[1])
    for node in model.graph.node:
        for entry in node.metadata_props:
            entry.value = entry.value.replace(f"{ROOT}/", "").replace(site_packages, "site-packages")
    onnx.save_model(model, str(path))


def main():
    warnings.filterwarnings("ignore")
    for folder in OUT.iterdir() if OUT.exists() else ():
        if folder.is_dir():  # the README beside the models stays
            shutil.rmtree(folder)
    torch.manual_seed(20261204)
    x16 = torch.randn(4, 16)
    view_norm = ViewNormMLP().eval()
    for opset in (11, 13, 17):
        legacy(f"legacy_view_norm_op{opset}", view_norm, (x16,), opset, ["input"], ["output"])
    batch_norm = BatchNormMLP().eval()
    legacy("legacy_batchnorm_op15", batch_norm, (x16,), 15, ["input"], ["output"])
    tabular = TabularMLP().eval()
    tabular_args = (torch.randn(3, 4), torch.randint(0, 9, (3, 5)), torch.randn(3, 3))
    legacy("legacy_tabular_op17", tabular, tabular_args, 17, ["numeric", "codes", "flags"], ["probs", "label"])
    rank_three = RankThreeMLP().eval()
    legacy("legacy_rank3_op17", rank_three, (x16,), 17, ["x"], dynamic={"x": {0: "b"}})
    flatten = FlattenMLP().eval()
    legacy("legacy_flatten_op13", flatten, (torch.randn(3, 4, 5),), 13, ["input.1"], dynamic={"input.1": {0: "N"}})
    half = BatchNormMLP().eval().half()
    legacy("legacy_fp16_op17", half, (x16.half(),), 17, ["input"], ["output"])
    legacy("legacy_fp64_op17", BatchNormMLP().eval().double(), (x16.double(),), 17, ["input"], ["output"])
    activations = ActivationMLP().eval()
    legacy("legacy_activations_op17", activations, (x16,), 17, ["x"], ["y"])

    dynamo("dynamo_view_norm", view_norm, (x16,), external_data=True)
    dynamo("dynamo_batchnorm_op18", batch_norm, (x16,), dim=torch.export.Dim.DYNAMIC, opset=18)
    dynamo("dynamo_tabular", tabular, tabular_args)
    dynamo("dynamo_rank3", rank_three, (x16,), external_data=True)
    dynamo("dynamo_flatten", flatten, (torch.randn(3, 4, 5),))
    dynamo("dynamo_fp16", half, (x16.half(),), external_data=True)
    dynamo("dynamo_activations", activations, (x16,))

    # Graphs the importer must refuse, naming the LSTM or Conv node.
    for kind, model, x in (("lstm", LSTMHead().eval(), torch.randn(3, 5, 8)),
                           ("conv", ConvHead().eval(), torch.randn(3, 2, 16))):
        legacy(f"refuse_legacy_{kind}", model, (x,), 17, ["input"], ["output"])
        dynamo(f"refuse_dynamo_{kind}", model, (x,))
    for path in sorted(OUT.rglob("*")):
        if path.is_file():
            print(f"{path.relative_to(OUT)}  {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
