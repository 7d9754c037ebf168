"""## What it does
Flags a hidden dense layer wider than the dense layer before it, in the chain of dense layers that
feeds an output: a classifier's (class scores: the spec's `output` of logits, probabilities or binary,
or what its head implies) or any other output with fewer values than the network's input (a
regression, an embedding). The output layer itself is never compared: its width is the number of
classes or targets.

## Why is this bad?
A head distils the features into a decision: its widths should shrink, or stay the same, towards
the output (AlexNet's and VGG's 4096, 4096, then the classes; LeNet's 120, 84, 10). A layer wider
than the one feeding it cannot hold more information than that narrower layer passed on; it adds
weights (and overfitting) without adding anything to decide with, and the narrow layer before it is
the bottleneck of the whole head. The first hidden layer may be wider than the input (a perceptron
on 20 features with 64 units): only hidden layers are compared with each other.

Where it does not apply: a decoder widens on purpose. An output that is not class scores and holds
as many values as the input or more (an autoencoder's reconstruction, a generator's sample) is not
checked, nor is an undeclared sigmoid output of that size. Dense layers separated by a merge (the
branches of a multi-input network) are not one chain.

## Example
```yaml
input: [1, 28, 28]
output: logits
classes: 10
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - flatten
  - dense: 128
  - relu
  - dense: 512           # wider than the 128 before it
  - relu
  - dense: 10
```

## Use instead
```yaml
input: [1, 28, 28]
output: logits
classes: 10
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - flatten
  - dense: 512
  - relu
  - dense: 128
  - relu
  - dense: 10
```

## Options
None.

## References
- NeuraLint (Nikanjam et al., *Automatic Fault Detection for Deep Learning Programs Using Graph
  Transformations*, TOSEM 2021), rule f019: the area of the feature maps and the width of the
  fully connected layers should decrease progressively over the layers.
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*: the fully connected layers of
  AlexNet and VGG keep or reduce their width towards the class scores.
"""

from __future__ import annotations

import math

from archcheck.findings import Report
from archcheck.spec import INPUT

from ._walk import before, channels, output_of

CODE = "AC506"
SLUG = "dense-widths-growing"
SEVERITY = "warning"
SCOPE = "path"  # the output decides it (docs/lint.md, SCOPE)
OPTIONS: dict = {}
SUMMARY = "Hidden dense layer wider than the dense layer before it on the way to the output."

CLASSIFIER = ("logits", "probabilities", "binary")


def _dense(node) -> bool:
    return node.layer.weighted and not node.layer.window


def _between(node) -> bool:
    """What may sit between two dense layers of a chain: activations, normalisations, dropout and other
    layers that hand a vector on (one input, no weights)."""
    return len(node.inputs) == 1 and not node.layer.weighted and (node.layer.pointwise or node.layer.passes) \
        and not node.layer.gate


def _previous(analysis, node):
    """The dense layer right before ``node`` on a plain chain, or None."""
    ups = list(before(analysis, node, _between))
    return ups[0] if len(ups) == 1 and _dense(ups[0]) else None


def check(analysis, options):
    size_in = math.prod(analysis.layers[INPUT].shape)
    seen: set[str] = set()
    for output in analysis.graph.outputs:
        kind, said = output_of(analysis, output)
        node = analysis.graph.nodes[output]
        last = node if _dense(node) else _previous(analysis, node) if _between(node) else None
        if last is None:
            continue
        scores = kind is not None and kind.kind in CLASSIFIER and (said or kind.kind != "binary")
        if not scores and channels(analysis, last) >= size_in:
            continue  # a decoder's output, as large as the input or larger: it widens on purpose
        chain = []  # the hidden dense layers, from the output backwards
        prev = _previous(analysis, last)
        while prev is not None:
            chain.append(prev)
            prev = _previous(analysis, prev)
        chain.reverse()
        widths = [channels(analysis, d) for d in chain]
        path = " -> ".join(f"{w:,}" for w in [*widths, channels(analysis, last)])
        what = f"{kind.kind} output" if kind is not None else "output"
        for (narrow, a), (wider, b) in zip(zip(chain, widths), zip(chain[1:], widths[1:])):
            if b > a and wider.name not in seen:
                seen.add(wider.name)
                yield Report(
                    wider,
                    f"has {b:,} units, more than the {a:,} of '{narrow.name}' before it on the way to the {what} "
                    f"'{output}' ({path}): the widths grow towards the output (expected them to shrink or stay the "
                    f"same)",
                    f"give it at most {a:,} units, or widen '{narrow.name}' to {b:,} instead",
                )
