'use strict';
// The models the libtorch bench and scripts/gpu-check.js run, built from torchsave's nn layers.
// Their Python twins are in bench/py/lt_models.py, with the same submodule names, so a state
// dict made by one side loads into the other (the outputs are then compared).
//
// Plain CommonJS taking the package as an argument: it runs against dist/ here and against the
// packed dist/ on the GPU machine.

/** @param {typeof import('../../dist')} torch */
module.exports = function ltModels(torch) {
  const { nn } = torch;
  const F = nn.functional;

  /** The seed tutorial's TheModelClass (pytorch-save-load-notes.md), with its forward. */
  class TheModelClass extends nn.Module {
    conv1 = new nn.Conv2d(3, 6, 5);
    pool = new nn.MaxPool2d(2, 2);
    conv2 = new nn.Conv2d(6, 16, 5);
    fc1 = new nn.Linear(16 * 5 * 5, 120);
    fc2 = new nn.Linear(120, 84);
    fc3 = new nn.Linear(84, 10);
    forward(x) {
      x = this.pool.call(F.relu(this.conv1.call(x)));
      x = this.pool.call(F.relu(this.conv2.call(x)));
      x = x.view(-1, 16 * 5 * 5);
      x = F.relu(this.fc1.call(x));
      x = F.relu(this.fc2.call(x));
      return this.fc3.call(x);
    }
  }

  /** torchvision's BasicBlock: two 3x3 convolutions and a residual add. */
  class BasicBlock extends nn.Module {
    constructor(inplanes, planes, stride = 1, downsample = null) {
      super();
      this.conv1 = new nn.Conv2d(inplanes, planes, 3, { stride, padding: 1, bias: false });
      this.bn1 = new nn.BatchNorm2d(planes);
      this.relu = new nn.ReLU(true);
      this.conv2 = new nn.Conv2d(planes, planes, 3, { stride: 1, padding: 1, bias: false });
      this.bn2 = new nn.BatchNorm2d(planes);
      if (downsample) this.downsample = downsample;
    }
    forward(x) {
      let out = this.relu.call(this.bn1.call(this.conv1.call(x)));
      out = this.bn2.call(this.conv2.call(out));
      const identity = this.downsample ? this.downsample.call(x) : x;
      return this.relu.call(out.add(identity));
    }
  }

  /** ResNet-18 with torchvision's layout and state-dict keys (11.7 M parameters). */
  class ResNet18 extends nn.Module {
    constructor(numClasses = 1000) {
      super();
      this.conv1 = new nn.Conv2d(3, 64, 7, { stride: 2, padding: 3, bias: false });
      this.bn1 = new nn.BatchNorm2d(64);
      this.relu = new nn.ReLU(true);
      this.maxpool = new nn.MaxPool2d(3, 2, { padding: 1 });
      let inplanes = 64;
      const layer = (planes, stride) => {
        let down = null;
        if (stride !== 1 || inplanes !== planes) {
          down = new nn.Sequential(new nn.Conv2d(inplanes, planes, 1, { stride, bias: false }), new nn.BatchNorm2d(planes));
        }
        const blocks = [new BasicBlock(inplanes, planes, stride, down), new BasicBlock(planes, planes)];
        inplanes = planes;
        return new nn.Sequential(...blocks);
      };
      this.layer1 = layer(64, 1);
      this.layer2 = layer(128, 2);
      this.layer3 = layer(256, 2);
      this.layer4 = layer(512, 2);
      this.avgpool = new nn.AdaptiveAvgPool2d([1, 1]);
      this.fc = new nn.Linear(512, numClasses);
    }
    forward(x) {
      x = this.maxpool.call(this.relu.call(this.bn1.call(this.conv1.call(x))));
      x = this.layer4.call(this.layer3.call(this.layer2.call(this.layer1.call(x))));
      x = this.avgpool.call(x).flatten(1);
      return this.fc.call(x);
    }
  }

  /** Builds a model by name: 'seed' or 'resnet18'. */
  function build(name) {
    if (name === 'seed') return new TheModelClass();
    if (name === 'resnet18') return new ResNet18();
    throw new Error(`unknown model ${name}`);
  }

  /** The input shape each model's forward bench uses, for a batch of n. */
  function inputShape(name, n) {
    return name === 'seed' ? [n, 3, 32, 32] : [n, 3, 224, 224];
  }

  return { TheModelClass, BasicBlock, ResNet18, build, inputShape };
};
