// face-api's 68-point landmark net (@vladmandic/face-api, tfjs on its WebAssembly backend) on face crops, for
// wflwv.methods.faceapi. Reads crops (k, S, S, 3) uint8 as .npy on stdin, writes (k, 68, 2) float64 points in [0, 1]
// crop units; each message is its length (8 bytes, little-endian) and then the .npy bytes (wflwv/methods/worker.py).
// Run with NODE_PATH at the node_modules that `wflwv setup-method faceapi68` fills.
const path = require('path');
const tf = require('@tensorflow/tfjs');
const wasm = require('@tensorflow/tfjs-backend-wasm');
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

function readNpy(bytes) {
  const headerLength = bytes.readUInt16LE(8);
  const header = bytes.toString('latin1', 10, 10 + headerLength);
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').filter((s) => s.trim()).map(Number);
  return { shape, data: bytes.subarray(10 + headerLength) };
}

function npyFloat64(values, shape) {
  let header = `{'descr': '<f8', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const prefix = Buffer.alloc(10);
  Buffer.from('\x93NUMPY', 'latin1').copy(prefix);
  prefix.writeUInt8(1, 6);
  prefix.writeUInt16LE(header.length, 8);
  return Buffer.concat([prefix, Buffer.from(header, 'latin1'), Buffer.from(new Float64Array(values).buffer)]);
}

async function landmarks(crops) {
  const [count, height, width] = crops.shape;
  const values = [];
  for (let i = 0; i < count; i += 1) {
    const pixels = crops.data.subarray(i * height * width * 3, (i + 1) * height * width * 3);
    const image = tf.tensor3d(Int32Array.from(pixels), [height, width, 3], 'int32');
    const found = await faceapi.nets.faceLandmark68Net.detectLandmarks(image);
    image.dispose();
    for (const point of found.relativePositions) values.push(point.x, point.y);
  }
  return npyFloat64(values, [count, 68, 2]);
}

async function main() {
  wasm.setWasmPaths(path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), path.sep));
  await tf.setBackend('wasm');
  await tf.ready();
  await faceapi.nets.faceLandmark68Net.loadFromDisk(path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'model'));
  let pending = Buffer.alloc(0);
  let busy = Promise.resolve();
  process.stdin.on('data', (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 8) {
      const size = Number(pending.readBigUInt64LE(0));
      if (pending.length < 8 + size) break;
      const message = readNpy(pending.subarray(8, 8 + size));
      pending = pending.subarray(8 + size);
      busy = busy.then(() => landmarks(message)).then((answer) => {
        const length = Buffer.alloc(8);
        length.writeBigUInt64LE(BigInt(answer.length));
        process.stdout.write(Buffer.concat([length, answer]));
      }).catch(fail);
    }
  });
}

function fail(error) {
  process.stderr.write(`${String(error.stack || error).split('\n')[0]}\n`);
  process.exit(1);
}

main().catch(fail);
