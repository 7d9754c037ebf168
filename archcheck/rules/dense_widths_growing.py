"""## What it does
Flags a hidden dense layer wider than the dense layer before it, in the chain of dense layers that
feeds a classifier's output (an output of logits, probabilities or binary values: the spec's
`output`, or what its head implies). The output layer itself is never compared: its width is the
number of classes. An undeclared sigmoid output at least as wide as every hidden layer is read as a
decoder's reconstruction, not a classifier.

## Why is this bad?
A classifier's head distils the features into a decision: its widths should shrink, or stay the same,
towards the output (AlexNet's and VGG's 4096, 4096, then the classes; LeNet's 120, 84, 10). A layer
wider than the one feeding it cannot hold more information than that narrower layer passed on; it
adds weights (and overfitting) without adding anything to decide with, and the narrow layer before it
is the bottleneck of the whole head.

Where it does not apply: outputs that are not class scores, such as an autoencoder's reconstruction
or a regression, whose decoders widen on purpose, are not checked (declare `output: regression`, or
let the sigmoid output be wider than the hidden layers); nor is the output layer, nor dense layers
separated by a merge (a branch of a multi-input network).

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

from archcheck.findings import Report

from ._walk import before, channels, output_of

CODE = "AC506"
SLUG = "dense-widths-growing"
SEVERITY = "warning"
SCOPE = "path"  # what the output is decides it (docs/lint.md, SCOPE)
OPTIONS: dict = {}
SUMMARY = "Hidden dense layer wider than the dense layer before it in a classifier's head."

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
    seen: set[str] = set()
    for output in analysis.graph.outputs:
        kind, said = output_of(analysis, output)
        if kind is None or kind.kind not in CLASSIFIER:
            continue
        node = analysis.graph.nodes[output]
        last = node if _dense(node) else _previous(analysis, node) if _between(node) else None
        if last is None:
            continue
        chain = []  # the hidden dense layers, from the output backwards
        prev = _previous(analysis, last)
        while prev is not None:
            chain.append(prev)
            prev = _previous(analysis, prev)
        chain.reverse()
        widths = [channels(analysis, d) for d in chain]
        if kind.kind == "binary" and not said and widths and channels(analysis, last) >= max(widths):
            continue  # a sigmoid over more values than any hidden layer holds: a decoder's reconstruction
        path = " -> ".join(f"{w:,}" for w in [*widths, channels(analysis, last)])
        for (narrow, a), (wider, b) in zip(zip(chain, widths), zip(chain[1:], widths[1:])):
            if b > a and wider.name not in seen:
                seen.add(wider.name)
                yield Report(
                    wider,
                    f"has {b:,} units, more than the {a:,} of '{narrow.name}' before it on the way to the "
                    f"{kind.kind} output '{output}' ({path}): the widths grow towards the output (expected them to "
                    f"shrink or stay the same)",
                    f"give it at most {a:,} units, or widen '{narrow.name}' to {b:,} instead",
                )
