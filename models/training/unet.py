"""Small 3D U-Net (nnU-Net-like): per level two 3x3x3 convolutions with InstanceNorm (affine) and
LeakyReLU(0.01); strided 3x3x3 convolution down, 2x2x2 transposed convolution up, skip
connections by concatenation; a 1x1x1 convolution gives C logits. Input [N, 1, Z, Y, X] with
Z, Y, X divisible by 2 ** (levels - 1)."""
import torch
import torch.nn as nn


def block(cin, cout, stride=1):
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=True),
        nn.InstanceNorm3d(cout, affine=True),
        nn.LeakyReLU(0.01, inplace=True),
        nn.Conv3d(cout, cout, 3, padding=1, bias=True),
        nn.InstanceNorm3d(cout, affine=True),
        nn.LeakyReLU(0.01, inplace=True),
    )


class UNet3D(nn.Module):
    def __init__(self, n_classes: int, widths=(8, 16, 32, 64)):
        super().__init__()
        self.down = nn.ModuleList()
        cin = 1
        for i, w in enumerate(widths):
            self.down.append(block(cin, w, stride=1 if i == 0 else 2))
            cin = w
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in range(len(widths) - 1, 0, -1):
            self.up.append(nn.ConvTranspose3d(widths[i], widths[i - 1], 2, stride=2))
            self.dec.append(block(2 * widths[i - 1], widths[i - 1]))
        self.head = nn.Conv3d(widths[0], n_classes, 1)

    def forward(self, x):
        skips = []
        for d in self.down:
            x = d(x)
            skips.append(x)
        skips.pop()
        for up, dec in zip(self.up, self.dec):
            x = up(x)
            x = dec(torch.cat([x, skips.pop()], dim=1))
        return self.head(x)
