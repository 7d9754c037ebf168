"""Flat documents as an importer makes them from torchvision's models (written out here from
torchvision's module layout, since these tests do not run PyTorch): every layer listed, named as
torch names its modules (``layer1_0_conv1``, ``Mixed_5b_branch1x1_conv``), merges reading by name."""

from __future__ import annotations


class _Flat:
    def __init__(self, name: str, shape: list[int]):
        self.doc = {"name": name, "input": shape, "layers": []}
        self.last = self.listed = "input"  # the layer the next one reads; the layer listed last

    def add(self, kind: str, args: dict, name: str, inputs: list[str] | None = None) -> str:
        entry = {kind: args, "name": name}
        if (inputs or [self.last]) != [self.listed]:
            entry["inputs"] = inputs or [self.last]
        self.doc["layers"].append(entry)
        self.last = self.listed = name
        return name

    def basic(self, name: str, filters: int, kernel=1, stride=1, padding=0, source: str | None = None) -> str:
        """torchvision's BasicConv2d: conv without bias, batchnorm (eps 0.001), relu."""
        if source is not None:
            self.last = source
        args = {"filters": filters, "kernel": kernel, "bias": False}
        args.update({"stride": stride} if stride != 1 else {})
        args.update({"padding": padding} if padding != 0 else {})
        self.add("conv", args, f"{name}_conv")
        self.add("batchnorm", {"eps": 0.001}, f"{name}_bn")
        return self.add("relu", {}, f"{name}_relu")


def resnet50() -> dict:
    f = _Flat("resnet50", [3, 224, 224])
    f.add("conv", {"filters": 64, "kernel": 7, "stride": 2, "padding": 3, "bias": False}, "conv1")
    f.add("batchnorm", {}, "bn1")
    f.add("relu", {}, "relu")
    x = f.add("maxpool", {"kernel": 3, "stride": 2, "padding": 1}, "maxpool")
    for stage, (width, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], 1):
        for j in range(blocks):
            p, stride = f"layer{stage}_{j}", 2 if j == 0 and stage > 1 else 1
            f.add("conv", {"filters": width, "kernel": 1, "bias": False}, f"{p}_conv1", [x])
            f.add("batchnorm", {}, f"{p}_bn1")
            f.add("relu", {}, f"{p}_relu")
            f.add("conv", {"filters": width, "kernel": 3, "padding": 1, "bias": False} |
                  ({"stride": stride} if stride != 1 else {}), f"{p}_conv2")
            f.add("batchnorm", {}, f"{p}_bn2")
            f.add("relu", {}, f"{p}_relu_1")
            f.add("conv", {"filters": 4 * width, "kernel": 1, "bias": False}, f"{p}_conv3")
            main = f.add("batchnorm", {}, f"{p}_bn3")
            short = x
            if j == 0:
                f.add("conv", {"filters": 4 * width, "kernel": 1, "bias": False} |
                      ({"stride": stride} if stride != 1 else {}), f"{p}_downsample_0", [x])
                short = f.add("batchnorm", {}, f"{p}_downsample_1")
            f.add("add", {}, f"{p}_add", [main, short])
            x = f.add("relu", {}, f"{p}_relu_2")
    f.add("globalavgpool", {}, "avgpool")
    f.add("dense", {"units": 1000}, "fc")
    return f.doc


def inception_v3() -> dict:
    """torchvision's Inception-v3 in evaluation (no auxiliary head), 299x299."""
    f = _Flat("inception_v3", [3, 299, 299])
    f.basic("Conv2d_1a_3x3", 32, 3, 2)
    f.basic("Conv2d_2a_3x3", 32, 3)
    f.basic("Conv2d_2b_3x3", 64, 3, padding=1)
    f.add("maxpool", {"kernel": 3, "stride": 2}, "maxpool1")
    f.basic("Conv2d_3b_1x1", 80)
    f.basic("Conv2d_4a_3x3", 192, 3)
    x = f.add("maxpool", {"kernel": 3, "stride": 2}, "maxpool2")

    def a(p, x, pool):
        b1 = f.basic(f"{p}_branch1x1", 64, source=x)
        f.basic(f"{p}_branch5x5_1", 48, source=x)
        b5 = f.basic(f"{p}_branch5x5_2", 64, 5, padding=2)
        f.basic(f"{p}_branch3x3dbl_1", 64, source=x)
        f.basic(f"{p}_branch3x3dbl_2", 96, 3, padding=1)
        b3 = f.basic(f"{p}_branch3x3dbl_3", 96, 3, padding=1)
        f.add("avgpool", {"kernel": 3, "stride": 1, "padding": 1}, f"{p}_avg_pool2d", [x])
        bp = f.basic(f"{p}_branch_pool", pool)
        return f.add("concat", {}, f"{p}_cat", [b1, b5, b3, bp])

    def b(p, x):
        b3 = f.basic(f"{p}_branch3x3", 384, 3, 2, source=x)
        f.basic(f"{p}_branch3x3dbl_1", 64, source=x)
        f.basic(f"{p}_branch3x3dbl_2", 96, 3, padding=1)
        bd = f.basic(f"{p}_branch3x3dbl_3", 96, 3, 2)
        bp = f.add("maxpool", {"kernel": 3, "stride": 2}, f"{p}_max_pool2d", [x])
        return f.add("concat", {}, f"{p}_cat", [b3, bd, bp])

    def c(p, x, c7):
        b1 = f.basic(f"{p}_branch1x1", 192, source=x)
        f.basic(f"{p}_branch7x7_1", c7, source=x)
        f.basic(f"{p}_branch7x7_2", c7, [1, 7], padding=[0, 3])
        b7 = f.basic(f"{p}_branch7x7_3", 192, [7, 1], padding=[3, 0])
        f.basic(f"{p}_branch7x7dbl_1", c7, source=x)
        f.basic(f"{p}_branch7x7dbl_2", c7, [7, 1], padding=[3, 0])
        f.basic(f"{p}_branch7x7dbl_3", c7, [1, 7], padding=[0, 3])
        f.basic(f"{p}_branch7x7dbl_4", c7, [7, 1], padding=[3, 0])
        bd = f.basic(f"{p}_branch7x7dbl_5", 192, [1, 7], padding=[0, 3])
        f.add("avgpool", {"kernel": 3, "stride": 1, "padding": 1}, f"{p}_avg_pool2d", [x])
        bp = f.basic(f"{p}_branch_pool", 192)
        return f.add("concat", {}, f"{p}_cat", [b1, b7, bd, bp])

    def d(p, x):
        f.basic(f"{p}_branch3x3_1", 192, source=x)
        b3 = f.basic(f"{p}_branch3x3_2", 320, 3, 2)
        f.basic(f"{p}_branch7x7x3_1", 192, source=x)
        f.basic(f"{p}_branch7x7x3_2", 192, [1, 7], padding=[0, 3])
        f.basic(f"{p}_branch7x7x3_3", 192, [7, 1], padding=[3, 0])
        b7 = f.basic(f"{p}_branch7x7x3_4", 192, 3, 2)
        bp = f.add("maxpool", {"kernel": 3, "stride": 2}, f"{p}_max_pool2d", [x])
        return f.add("concat", {}, f"{p}_cat", [b3, b7, bp])

    def e(p, x):
        b1 = f.basic(f"{p}_branch1x1", 320, source=x)
        s = f.basic(f"{p}_branch3x3_1", 384, source=x)
        l3 = f.basic(f"{p}_branch3x3_2a", 384, [1, 3], padding=[0, 1])
        r3 = f.basic(f"{p}_branch3x3_2b", 384, [3, 1], padding=[1, 0], source=s)
        b3 = f.add("concat", {}, f"{p}_cat", [l3, r3])
        f.basic(f"{p}_branch3x3dbl_1", 448, source=x)
        s = f.basic(f"{p}_branch3x3dbl_2", 384, 3, padding=1)
        l3 = f.basic(f"{p}_branch3x3dbl_3a", 384, [1, 3], padding=[0, 1])
        r3 = f.basic(f"{p}_branch3x3dbl_3b", 384, [3, 1], padding=[1, 0], source=s)
        bd = f.add("concat", {}, f"{p}_cat_1", [l3, r3])
        f.add("avgpool", {"kernel": 3, "stride": 1, "padding": 1}, f"{p}_avg_pool2d", [x])
        bp = f.basic(f"{p}_branch_pool", 192)
        return f.add("concat", {}, f"{p}_cat_2", [b1, b3, bd, bp])

    x = a("Mixed_5b", x, 32)
    x = a("Mixed_5c", x, 64)
    x = a("Mixed_5d", x, 64)
    x = b("Mixed_6a", x)
    for p, c7 in [("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)]:
        x = c(p, x, c7)
    x = d("Mixed_7a", x)
    x = e("Mixed_7b", x)
    x = e("Mixed_7c", x)
    f.add("globalavgpool", {}, "avgpool", [x])
    f.add("dropout", {"rate": 0.5}, "dropout")
    f.add("dense", {"units": 1000}, "fc")
    return f.doc
