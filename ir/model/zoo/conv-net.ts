/**
 * The layers of a convolutional network (conv, batch norm, ReLU, ReLU6, max pool, residual add,
 * classifier) over one OnnxGraphBuilder, with random weights drawn from one seeded WeightRandom.
 * It carries an estimate of every channel's mean and variance through the network so that each
 * BatchNormalization gets the running statistics a trained network would have for these weights
 * (its input normalized to about N(beta, gamma^2)): activations then neither explode nor vanish
 * over 50 layers, and fp32 comparisons against another runtime are meaningful.
 */
import { fail } from '../../errors.ts';
import { erf } from '../../problem.ts';
import { float, int, ints, OnnxGraphBuilder, WeightRandom, type Dim } from './builder.ts';

/** Estimated per-channel mean and variance of an activation (over positions and images). */
export interface ChannelStats {
  readonly mean: Float64Array;
  readonly variance: Float64Array;
}

/** An NCHW activation: its value name, channel count and estimated statistics. */
export interface FeatureMap {
  readonly name: string;
  readonly channels: number;
  readonly stats: ChannelStats;
  /** the statistics before a ReLU (or ReLU6) that produced this map */
  readonly beforeRelu?: ChannelStats;
}

export interface ConvOptions {
  /** output channels */
  readonly out: number;
  /** square kernel side */
  readonly kernel: number;
  readonly stride?: number;
  /** zero padding on every side */
  readonly pad?: number;
  /** channel groups; `groups === channels` is a depthwise convolution */
  readonly groups?: number;
}

export interface PoolOptions {
  readonly kernel: number;
  readonly stride: number;
  readonly pad: number;
}

/** torch's BatchNorm2d defaults, which its exporter writes as attributes */
const BN_EPSILON = 1e-5;
const BN_MOMENTUM = 0.9;

const normalPdf = (z: number) => Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI);
const normalCdf = (z: number) => 0.5 * (1 + erf(z / Math.SQRT2));

/**
 * Layers of an NCHW network over one graph, named as in torchvision's state dict (`layer1.0.conv1`
 * is the node, `layer1.0.conv1.weight` its weight). Convolutions are bias-free (a batch norm
 * follows each), He-normal: std sqrt(2 / fan_in).
 */
export class ConvNetBuilder {
  readonly graph: OnnxGraphBuilder;
  readonly random: WeightRandom;
  /** Clip's bounds for ReLU6, shared by every Clip (opset 11+ takes them as inputs) */
  private relu6Bounds?: readonly [string, string];

  constructor(name: string, seed: number) {
    this.graph = new OnnxGraphBuilder(name);
    this.random = new WeightRandom(seed);
  }

  /** The image input, NCHW; its pixels assumed about N(0, 1) (a normalized image). */
  input(name: string, dims: readonly [Dim, number, number, number]): FeatureMap {
    const channels = dims[1];
    return { name: this.graph.input(name, dims), channels, stats: constantStats(channels, 0, 1) };
  }

  conv(x: FeatureMap, name: string, options: ConvOptions): FeatureMap {
    const { out, kernel, stride = 1, pad = 0, groups = 1 } = options;
    if (x.channels % groups || out % groups) fail(`zoo model ${this.graph.name}: conv ${name} has ${x.channels} -> ${out} channels, not divisible into ${groups} groups`);
    const perGroupIn = x.channels / groups, perGroupOut = out / groups, taps = kernel * kernel;
    const fanIn = perGroupIn * taps;
    const weight = this.random.normal(out * fanIn, Math.sqrt(2 / fanIn));
    const w = this.graph.initializer(`${name}.weight`, [out, perGroupIn, kernel, kernel], weight);
    // y = sum of w * x over the window: mean sum(w) * mu, variance sum(w^2) * sigma^2 for independent inputs
    const mean = new Float64Array(out), variance = new Float64Array(out);
    for (let o = 0; o < out; o++) {
      const firstIn = Math.floor(o / perGroupOut) * perGroupIn;
      for (let c = 0; c < perGroupIn; c++) {
        let sum = 0, squares = 0;
        for (let t = 0, at = (o * perGroupIn + c) * taps; t < taps; t++, at++) {
          sum += weight[at]!;
          squares += weight[at]! * weight[at]!;
        }
        mean[o] += sum * x.stats.mean[firstIn + c]!;
        variance[o] += squares * x.stats.variance[firstIn + c]!;
      }
    }
    const y = this.graph.node('Conv', name, [x.name, w], {
      dilations: ints([1, 1]), group: int(groups), kernel_shape: ints([kernel, kernel]),
      pads: ints([pad, pad, pad, pad]), strides: ints([stride, stride]),
    });
    return { name: y, channels: out, stats: { mean, variance } };
  }

  /**
   * BatchNormalization in inference mode: gamma in [0.5, 1), beta ~ N(0, 0.1^2), and running
   * statistics those of its input (estimated), off by a few percent as a trained network's are.
   */
  batchNorm(x: FeatureMap, name: string): FeatureMap {
    const n = x.channels;
    const gamma = this.random.uniform(n, 0.5, 1);
    const beta = this.random.normal(n, 0.1);
    const meanNoise = this.random.normal(n, 0.05);
    const varianceFactor = this.random.uniform(n, 0.9, 1.1);
    const runningMean = new Float32Array(n), runningVar = new Float32Array(n);
    const mean = new Float64Array(n), variance = new Float64Array(n);
    for (let c = 0; c < n; c++) {
      const sd = Math.sqrt(x.stats.variance[c]!);
      runningMean[c] = x.stats.mean[c]! + meanNoise[c]! * sd;
      runningVar[c] = Math.max(x.stats.variance[c]! * varianceFactor[c]!, 1e-3);
      const scale = gamma[c]! / Math.sqrt(runningVar[c]! + BN_EPSILON);
      mean[c] = (x.stats.mean[c]! - runningMean[c]!) * scale + beta[c]!;
      variance[c] = x.stats.variance[c]! * scale * scale;
    }
    const y = this.graph.node('BatchNormalization', name, [
      x.name,
      this.graph.initializer(`${name}.weight`, [n], gamma),
      this.graph.initializer(`${name}.bias`, [n], beta),
      this.graph.initializer(`${name}.running_mean`, [n], runningMean),
      this.graph.initializer(`${name}.running_var`, [n], runningVar),
    ], { epsilon: float(BN_EPSILON), momentum: float(BN_MOMENTUM) });
    return { name: y, channels: n, stats: { mean, variance } };
  }

  relu(x: FeatureMap, name: string): FeatureMap {
    return { name: this.graph.node('Relu', name, [x.name]), channels: x.channels, stats: rectified(x.stats), beforeRelu: x.stats };
  }

  /** ReLU6 as torch exports it: Clip(x, 0, 6). Statistics as ReLU's (values above 6 are rare at this scale). */
  relu6(x: FeatureMap, name: string): FeatureMap {
    this.relu6Bounds ??= [this.graph.scalar('relu6.min', 0), this.graph.scalar('relu6.max', 6)];
    const y = this.graph.node('Clip', name, [x.name, ...this.relu6Bounds]);
    return { name: y, channels: x.channels, stats: rectified(x.stats), beforeRelu: x.stats };
  }

  /** A residual sum of two maps with the same shape (independent, so means and variances add). */
  add(a: FeatureMap, b: FeatureMap, name: string): FeatureMap {
    if (a.channels !== b.channels) fail(`zoo model ${this.graph.name}: residual ${name} adds ${a.channels} to ${b.channels} channels`);
    const mean = a.stats.mean.map((m, c) => m + b.stats.mean[c]!);
    const variance = a.stats.variance.map((v, c) => v + b.stats.variance[c]!);
    return { name: this.graph.node('Add', name, [a.name, b.name]), channels: a.channels, stats: { mean, variance } };
  }

  /**
   * MaxPool. Statistics: the window's values taken as independent; after a ReLU, the maximum of
   * rectified values is the rectified maximum of the values before it, so that maximum is taken
   * from the pre-activation normal (the rectified one is far from normal, and skewed). Against
   * ONNX Runtime on ResNet-50's max pool and the convs after it: means and variances within 3%.
   */
  maxPool(x: FeatureMap, name: string, options: PoolOptions): FeatureMap {
    const { kernel, stride, pad } = options;
    const y = this.graph.node('MaxPool', name, [x.name], {
      ceil_mode: int(0), dilations: ints([1, 1]), kernel_shape: ints([kernel, kernel]),
      pads: ints([pad, pad, pad, pad]), strides: ints([stride, stride]),
    });
    const order = maximumOfNormals(kernel * kernel);
    const before = x.beforeRelu ?? x.stats;
    const mean = before.mean.map((m, c) => m + order.mean * Math.sqrt(before.variance[c]!));
    const variance = before.variance.map((v) => v * order.variance);
    const stats = x.beforeRelu ? rectified({ mean, variance }) : { mean, variance };
    return { name: y, channels: x.channels, stats };
  }

  /**
   * The head of an image classifier, as torchvision's exports end: GlobalAveragePool, Flatten,
   * then Gemm(x, W[classes, C], b, transB=1) into the graph output `output` of dims [batch, classes].
   * W and b uniform in +-1/sqrt(C) (torch's Linear default).
   */
  classifier(x: FeatureMap, names: { pool: string; flatten: string; fc: string }, classes: number, output: string, batch: Dim): void {
    const pooled = this.graph.node('GlobalAveragePool', names.pool, [x.name]);
    const flat = this.graph.node('Flatten', names.flatten, [pooled], { axis: int(1) });
    const bound = 1 / Math.sqrt(x.channels);
    const w = this.graph.initializer(`${names.fc}.weight`, [classes, x.channels], this.random.uniform(classes * x.channels, -bound, bound));
    const b = this.graph.initializer(`${names.fc}.bias`, [classes], this.random.uniform(classes, -bound, bound));
    this.graph.node('Gemm', names.fc, [flat, w, b], { alpha: float(1), beta: float(1), transB: int(1) }, output);
    this.graph.output(output, [batch, classes]);
  }
}

function constantStats(channels: number, mean: number, variance: number): ChannelStats {
  return { mean: new Float64Array(channels).fill(mean), variance: new Float64Array(channels).fill(variance) };
}

/** Mean and variance of max(0, y) for y ~ N(m, s^2), per channel (the rectified normal). */
function rectified(stats: ChannelStats): ChannelStats {
  const mean = new Float64Array(stats.mean.length), variance = new Float64Array(stats.mean.length);
  for (let c = 0; c < mean.length; c++) {
    const m = stats.mean[c]!, s = Math.sqrt(stats.variance[c]!);
    if (s === 0) {
      mean[c] = Math.max(m, 0);
      continue;
    }
    const z = m / s, cdf = normalCdf(z), pdf = normalPdf(z);
    const first = m * cdf + s * pdf;
    const second = (m * m + s * s) * cdf + m * s * pdf;
    mean[c] = first;
    variance[c] = Math.max(second - first * first, 0);
  }
  return { mean, variance };
}

/**
 * Mean and variance of the largest of `n` independent standard normals, by integrating its density
 * n phi(x) Phi(x)^(n-1) on a grid (n = 9: mean 1.485, variance 0.374).
 */
function maximumOfNormals(n: number): { mean: number; variance: number } {
  const step = 1e-3;
  let mass = 0, first = 0, second = 0;
  for (let x = -10; x <= 10; x += step) {
    const density = n * normalPdf(x) * normalCdf(x) ** (n - 1);
    mass += density;
    first += x * density;
    second += x * x * density;
  }
  const mean = first / mass;
  return { mean, variance: second / mass - mean * mean };
}
