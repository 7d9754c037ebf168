"""## What it does
Checks the last layers of each output against what the output is: the spec's `output` key
(`logits`, `probabilities`, `binary`, or `regression` with an optional `range`) or, without it, what
the output layer implies. It flags:

- softmax over a single value, which always outputs 1 (an error, whatever the task);
- for `probabilities` (mutually exclusive classes): an output without softmax, or sigmoid over
  several classes;
- for `binary` (independent probabilities: binary and multi-label classification, masks): an output
  whose values can leave [0, 1] (relu, tanh, no activation), or softmax coupling more than two outputs;
- for `logits` (the loss applies softmax or sigmoid itself): softmax or sigmoid at the output, or an
  activation that clips the scores (relu);
- for `regression`: an output activation whose range cannot reach the targets' range (sigmoid or relu
  for unbounded targets), or softmax over several values, which must sum to 1;
- dropout after the last layer, or a normalisation after the last layer with weights.

## Why is this bad?
The output layer and the loss have to agree, and nothing fails loudly when they do not: the network
trains, and learns little. Softmax over one value is exp(x)/exp(x) = 1 for every input, so its
gradient is zero and the network learns nothing. Sigmoid over mutually exclusive classes gives
probabilities that do not sum to 1; softmax over independent labels makes them compete. A relu output
for binary targets can exceed 1 and stops learning wherever it outputs 0; a sigmoid or relu output
for unbounded regression cannot produce most targets. A softmax before a loss that applies softmax
itself (PyTorch's `CrossEntropyLoss`, Keras with `from_logits=True`) squashes the scores twice and
flattens the gradient. Dropout after the last layer zeroes predictions while training, and a
normalisation there forces each output towards zero mean and unit variance, whatever the targets are.

Say what the output is with `output:`; the loss decides it. PyTorch's `CrossEntropyLoss` and
`BCEWithLogitsLoss`, and Keras losses with `from_logits=True`, take `logits`; Keras's
`categorical_crossentropy` and `sparse_categorical_crossentropy` take `probabilities`;
`binary_crossentropy` and `BCELoss` take `binary`; mean squared or absolute error takes `regression`.
Where it does not apply: without `output:`, the output layer itself is the best guess of the
intent, so only what is wrong for every task is checked (softmax over one value, dropout or
normalisation at the end). Dropout with rate 0 does nothing and is not flagged.

## Example
```yaml
input: [3, 64, 64]
output: binary           # cats or dogs, with a binary cross-entropy loss
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - globalavgpool
  - dense: 1
  - softmax              # over one value: always 1
```

## Use instead
```yaml
input: [3, 64, 64]
output: binary
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - globalavgpool
  - dense: 1
  - sigmoid
```

## Options
None.

## References
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*: softmax and its cross-entropy loss for
  exclusive classes, and the linear output of regression.
- NeuraLint (Nikanjam et al., 2021) and UMLAUT (Schoop et al., 2021): the last layer's activation against the
  loss; Humbatova et al., *Taxonomy of Real Faults in Deep Learning Systems* (ICSE 2020): wrong activation
  of the output layer, and missing or redundant softmax.
"""

from __future__ import annotations

import math

from archcheck.findings import Report

from ._walk import before, channels, final, is_activation, is_softmax, output_of, outputs_probability, passes

CODE = "AC505"
SLUG = "output-layer"
SEVERITY = "warning"
SCOPE = "layer"  # findings depend on the layer and what is upstream of it (docs/lint.md, SCOPE)
OPTIONS: dict = {}
SUMMARY = "Output layer that does not fit the output: softmax over one value, activation against the loss."

def _span(low: float, high: float) -> str:
    def end(x: float) -> str:
        return ("-" if x < 0 else "") + "inf" if math.isinf(x) else f"{x:g}"

    return f"[{end(low)}, {end(high)}]"


def _declared(output) -> str:
    if output.kind == "regression" and output.range != (-math.inf, math.inf):
        return f"`output: {{kind: regression, range: {_span(*output.range)}}}`"
    return f"`output: {output.kind}`"


def _activation(last, width: int, output, said: str):
    """What is wrong with the activation (or its absence) producing an output of ``width`` values."""
    kind = output.kind
    low, high = last.layer.output_range if is_activation(last) else (-math.inf, math.inf)
    name = last.type
    if kind == "logits" and is_activation(last):
        if low >= 0 and high <= 1:
            return (f"applies {name} before a loss that applies it itself ({said}): the scores are squashed twice, "
                    f"which flattens the gradient (expected the last layer with weights to give the output)",
                    f"remove `{name}`, or declare `output: {'probabilities' if is_softmax(last) else 'binary'}` if "
                    f"the loss takes {'probabilities' if is_softmax(last) else 'values in [0, 1]'}")
        if low > -math.inf or high < math.inf:
            return (f"clips the logits to {_span(low, high)} ({said}): scores outside it cannot be expressed, and the "
                    f"loss cannot push a wrong class below them (expected no activation on logits)",
                    f"remove `{name}` at the output")
    if kind == "probabilities":
        if is_softmax(last):
            return None
        if is_activation(last) and low >= 0 and high <= 1:
            return (f"applies {name} to {width} mutually exclusive classes ({said}): its outputs are independent and "
                    f"do not sum to 1 (expected softmax)",
                    "use `softmax`, or declare `output: binary` if the classes are not exclusive (multi-label)")
        what = f"ends in {name}, whose outputs span {_span(low, high)}" if is_activation(last) else \
            f"outputs raw scores from {name}"
        return (f"{what}, but the loss expects probabilities ({said}; expected softmax at the end)",
                "add `- softmax` at the end, or declare `output: logits` if the loss applies softmax itself (as "
                "PyTorch's CrossEntropyLoss does)")
    if kind == "binary":
        if is_softmax(last):
            if width > 2:
                return (f"applies softmax to {width} outputs that {said} treats as independent: softmax makes them "
                        f"compete and sum to 1 (expected sigmoid, one probability per output)",
                        "use `sigmoid`, or declare `output: probabilities` if exactly one class is true")
            return None
        if low >= 0 and high <= 1:
            return None
        what = f"ends in {name}, whose outputs span {_span(low, high)}" if is_activation(last) else \
            f"outputs raw scores from {name}"
        return (f"{what}, but {said} expects probabilities in [0, 1] (expected sigmoid)",
                "end with `- sigmoid`, or declare `output: logits` if the loss applies the sigmoid itself (as "
                "PyTorch's BCEWithLogitsLoss does)")
    if kind == "regression" and is_softmax(last) and width > 1:
        return (f"applies softmax to {width} regression outputs ({said}): softmax makes them compete and sum to 1, "
                f"so targets that do not (several values near 1, or all near 0) cannot be reached (expected an "
                f"output activation that treats each value on its own, or none)",
                "use `sigmoid` for independent values in [0, 1], or no activation for unbounded targets")
    if kind == "regression" and is_activation(last):
        want_low, want_high = output.range
        if low > want_low or high < want_high:
            return (f"ends in {name}, whose outputs span {_span(low, high)}, but the targets span "
                    f"{_span(want_low, want_high)} ({said}): most targets cannot be reached (expected an output "
                    f"activation that covers the targets, or none)",
                    f"remove `{name}` for unbounded targets (a linear output), or declare the targets' range: "
                    f"`output: {{kind: regression, range: [low, high]}}`")
    return None


def check(analysis, options):
    g = analysis.graph
    for name in analysis.graph.outputs:
        last = final(analysis, name)
        width = channels(analysis, last) if analysis.layers[last.name].shape else 0
        if is_softmax(last) and analysis.layers[last.name].shape[last.layer.axis] == 1:
            yield Report(last, f"applies softmax over a single value (axis {last.layer.axis} has size 1): it "
                               f"outputs 1 whatever its input, so no gradient reaches the layers before it "
                               f"(expected sigmoid for one binary output, or one unit per class)",
                         "use `sigmoid` for a single binary output, or give the layer before it one unit per class")
            continue
        output, written = output_of(analysis, name)
        if output is not None and written:
            # a normalisation at the output (reported below) hides the activation before it from the loss's view
            shaping = next(before(analysis, last, passes), last) if last.layer.normalises else last
            problem = _activation(shaping, width, output, _declared(output))
            if problem is not None:
                yield Report(shaping, *problem)
        node, path = g.nodes[name], []
        while node.name != last.name:  # the pass-through layers after the last layer, output first
            path.append(node)
            node = g.nodes[node.inputs[0]]
        for dropped in path:
            if dropped.layer.category == "regularizer" and getattr(dropped.layer, "rate", 1) > 0:
                yield Report(dropped, f"drops outputs of '{last.name}' ({last.type}), the network's output "
                                      f"'{name}': predictions are zeroed at random while training (expected "
                                      f"dropout only before the last layer with weights)",
                             f"remove this {dropped.type}, or move it before the last layer with weights")
        squash = outputs_probability(last)  # dense -> batchnorm -> softmax: the norm is still at the output
        norm = last if last.layer.normalises else \
            next((n for n in before(analysis, last, passes) if n.layer.normalises), None) if squash else None
        if norm is not None:
            yield Report(norm, f"normalises after the last layer with weights on the way to the output '{name}': it "
                               f"pulls every output towards zero mean and unit variance, whatever the targets are "
                               f"(expected normalisation only between hidden layers)",
                         f"remove this {norm.type}, or move it before the last layer with weights")
