import { createPrivateKey, createPublicKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { buildCertificate, CLIENT_AUTH } from '../../cli/certificates.js'
import { newKeyPair, memorySigner, signWithCertificateKey } from '../../test/support/pki.js'
import { deviceIds, invokeHandler, loadContainer } from './lambda.js'
import { muteProcessOutput } from './output.js'
import type { BenchStack } from './stack.js'
import { runPhase, type WarmPhase } from './warm-path.js'

const { parseFleets } = createRequire(import.meta.url)('../../deploy/fleets.cjs') as { parseFleets: (text: string, file: string, baseDir: string) => unknown }
const FLEET = 'factory'
const CA_SUBJECT = { commonName: 'thinger-provisioner LOCAL DEV ONLY CA', organization: 'thinger-provisioner' }

/** The X.509 fleet the section's bundle serves: the local dev CA compiled in, sealing required. */
export function x509BenchFleets(projectDir: string, fleetKeyParam: string): unknown {
  return parseFleets(
    `version: 1
fleets:
  default:
    proof: [hmac]
    keyParam: ${fleetKeyParam}
  ${FLEET}:
    proof: [x509]
    x509: { caFile: x509/ca.pem }
    denyListParam: /thinger-provisioner/bench/factory-deny-list
    sealing: required
`,
    join(projectDir, 'local', 'bench-fleets.yml'),
    join(projectDir, 'local'),
  )
}

export interface X509PathResult {
  thingerLatencyMs: number
  newDevices: WarmPhase
  certificateBytes: number
  requestBytes: number
}

/**
 * New X.509 devices, one after the other, in one warm container: each sends a P-256 certificate
 * of the fleet CA and asks for a sealed answer (ECDH). Certificates and signatures are made
 * before the phase, so only the handler's work and its Thinger call are timed.
 */
export async function runX509Path(stack: BenchStack, options: { projectDir: string; bundlePath: string; devices: number; thingerLatencyMs: number }): Promise<X509PathResult> {
  const caKey = createPrivateKey(readFileSync(join(options.projectDir, 'local', 'x509', 'ca.key.pem')))
  const caSpki = createPublicKey(caKey).export({ type: 'spki', format: 'der' }) as Buffer
  const bodies = new Map<string, string>()
  let certificateBytes = 0
  const timestamp = Math.floor(Date.now() / 1000)
  for (const device of ['x509_warm_up', ...deviceIds('x509_new', options.devices)]) {
    const keys = newKeyPair()
    const der = await buildCertificate(
      {
        subject: { commonName: device },
        issuer: { subject: CA_SUBJECT, publicKey: caSpki },
        publicKey: keys.publicKey.export({ type: 'spki', format: 'der' }) as Buffer,
        notBefore: new Date(Date.now() - 3600_000),
        notAfter: new Date(Date.now() + 86_400_000),
        ca: false,
        keyUsage: ['digitalSignature', 'keyAgreement'],
        extKeyUsage: [CLIENT_AUTH],
      },
      memorySigner(caKey),
    )
    certificateBytes = der.length
    const signature = signWithCertificateKey(keys.privateKey, device, timestamp, 2)
    bodies.set(device, JSON.stringify({ device, fleet: FLEET, version: 2, timestamp, certificate: der.toString('base64'), signature }))
  }

  const unmute = muteProcessOutput()
  try {
    stack.thinger.setFaults([])
    stack.thinger.setLatencyMs(options.thingerLatencyMs)
    const handler = await loadContainer(options.bundlePath, 'x509-path')
    const provision = async (device: string): Promise<void> => {
      const answer = await invokeHandler(handler, bodies.get(device) as string)
      if (answer.statusCode !== 201 || !answer.body.includes('"sealed"')) {
        throw new Error(`X.509 path: ${device} answered ${answer.statusCode}${answer.statusCode >= 300 ? `: ${answer.body.slice(0, 300)}` : ''}`)
      }
    }
    await provision('x509_warm_up')
    const newDevices = await runPhase(stack, 'new X.509 devices (sealed)', deviceIds('x509_new', options.devices), 1, provision)
    return { thingerLatencyMs: options.thingerLatencyMs, newDevices, certificateBytes, requestBytes: Buffer.byteLength(bodies.get('x509_warm_up') as string) }
  } finally {
    unmute()
  }
}
