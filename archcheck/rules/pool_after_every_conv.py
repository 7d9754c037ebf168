"""## What it does
Flags a deep plain stack that pools after every convolution: `min_convs` convolutions in a row along
a path, each followed by a downsampling pooling (`maxpool` or `avgpool` with a stride above 1) before
the next convolution. It reports once, at the pooling after the `min_convs`-th convolution, with the
map sizes along the way.

## Why is this bad?
Each pooling halves the map, so a network that pools after every convolution runs out of resolution
long before it runs out of layers: a 224x224 input is 14x14 after four convolutions and 1x1 after
eight, and every convolution sees a map already stripped of the detail the previous one found. Deep
CNNs stack two, three or four convolutions between poolings (VGG's blocks) so that the features grow
richer at one resolution before it is reduced.

Where it does not apply: shallow networks pool after each of their few convolutions on purpose
(LeNet's conv-pool-conv-pool, CifarNet), and AlexNet pools after its first two convolutions only,
then stacks three: neither has `min_convs` pooled convolutions in a row. Pooling that does not
downsample (stride 1, as in Inception's pooling branch) and global pooling are not counted.

## Example
```yaml
input: [3, 128, 128]
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - conv: {filters: 128, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - conv: {filters: 256, kernel: 3, padding: 1}
  - relu
  - maxpool: 2            # the fourth pooling in four convolutions
  - globalavgpool
  - dense: 10
```

## Use instead
```yaml
input: [3, 128, 128]
layers:
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 32, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - conv: {filters: 64, kernel: 3, padding: 1}
  - relu
  - maxpool: 2
  - globalavgpool
  - dense: 10
```

## Options
- `min_convs` (default 4): how many convolutions in a row, each followed by a downsampling pooling,
  make a deep stack that pools too often.

## References
- NeuraLint (Nikanjam et al., *Automatic Fault Detection for Deep Learning Programs Using Graph
  Transformations*, TOSEM 2021), rule f025: a deep CNN should not apply pooling after every convolution.
- CS231n notes, *Convolutional Neural Networks for Visual Recognition*: the usual pattern
  `[[CONV -> RELU]*N -> POOL?]*M`, with N of 2 or 3 in larger networks.
"""

from __future__ import annotations

from archcheck.findings import Report

from ._walk import before, is_conv, is_window_pool, plural, pooling, size, spatial, used

CODE = "AC104"
SLUG = "pool-after-every-conv"
SEVERITY = "warning"
SCOPE = "layer"  # findings depend on the layer and what is upstream of it (docs/lint.md, SCOPE)
OPTIONS = {"min_convs": 4}
SUMMARY = "Pooling after every one of 4 or more convolutions in a row."


def _between(node) -> bool:
    """A layer that keeps a conv-pool pair adjacent: one input, each value handled where it is
    (activations, normalisations, dropout, padding and other pass-through layers)."""
    return len(node.inputs) == 1 and not node.layer.weighted and not node.layer.window and \
        (node.layer.pointwise or node.layer.passes)


def _conv(node) -> bool:
    return is_conv(node) and not node.layer.upsamples


def _runs(analysis) -> dict[str, list]:
    """Per downsampling pooling, the longest run of (convolution, pooling) pairs that ends with it:
    each convolution followed by a pooling before the next convolution."""
    runs: dict[str, list] = {}
    for node in used(analysis):
        if not pooling(analysis, node):
            continue
        ups = list(before(analysis, node, _between))
        convs = [u for u in ups if _conv(u)]
        if len(convs) != 1 or len(ups) != 1:
            # stacked poolings extend the run of the pooling before them, without a convolution
            pools = [runs.get(u.name, []) for u in ups if is_window_pool(u)]
            runs[node.name] = max(pools, key=len) if pools and len(pools) == len(ups) else []
            continue
        conv = convs[0]
        prev = [runs.get(u.name, []) for u in before(analysis, conv, _between) if pooling(analysis, u)]
        runs[node.name] = [*max(prev, key=len, default=[]), (conv, node)]
    return runs


def validate(options):
    if options["min_convs"] < 2:
        raise ValueError("min_convs", "a convolution count of at least 2")


def check(analysis, options):
    n = options["min_convs"]
    for name, run in _runs(analysis).items():
        if len(run) != n or run[-1][1].name != name:
            continue
        conv, pool = run[-1]
        sizes = [spatial(analysis.layers[run[0][1].name].in_shapes[0])]
        sizes += [spatial(analysis.layers[p.name].shape) for _, p in run]
        convs = ", ".join(f"'{c.name}'" for c, _ in run)
        drop = ", ".join(f"'{p.name}'" for _, p in run[:-1:2])
        yield Report(
            pool,
            f"ends a run of {plural(n, 'convolution')} ({convs}), each followed by its own pooling: the "
            f"map shrinks {' -> '.join(size(s) for s in sizes)}, one convolution per resolution (expected "
            f"blocks of 2 to 4 convolutions between poolings in a deep network, as in VGG)",
            f"remove every other pooling of the run (e.g. {drop}) and stack convolutions in blocks of 2 or 3 "
            f"between the others",
        )
