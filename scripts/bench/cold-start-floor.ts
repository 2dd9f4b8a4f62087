// The floor of a cold start, run in a fresh `node` process (bundled to plain JS by cold-start.ts):
// what any provisioning function must do on its first request, and nothing else. One SSM
// GetParameters for the Thinger token, signed with Signature Version 4 by hand (node:crypto), and
// one Thinger.io create, both with the platform's `fetch`; no library, no validation, no log line.
// Reports over IPC the time from this module's first line to the create's answer.
import { createHash, createHmac } from 'node:crypto'

const started = performance.now()

const sha256 = (data: string): string => createHash('sha256').update(data).digest('hex')
const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data).digest()

async function getParameter(name: string): Promise<string> {
  const env = process.env
  const region = env.AWS_REGION ?? 'us-east-1'
  const url = new URL(env.AWS_ENDPOINT_URL_SSM ?? `https://ssm.${region}.amazonaws.com/`)
  const body = JSON.stringify({ Names: [name], WithDecryption: true })
  const amzDate = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '')
  const day = amzDate.slice(0, 8)
  const headers: Record<string, string> = {
    'content-type': 'application/x-amz-json-1.1',
    host: url.host,
    'x-amz-date': amzDate,
    'x-amz-target': 'AmazonSSM.GetParameters',
    ...(env.AWS_SESSION_TOKEN ? { 'x-amz-security-token': env.AWS_SESSION_TOKEN } : {}),
  }
  const names = Object.keys(headers).sort()
  const canonical = ['POST', url.pathname, '', ...names.map((header) => `${header}:${headers[header]}`), '', names.join(';'), sha256(body)].join('\n')
  const scope = `${day}/${region}/ssm/aws4_request`
  const key = hmac(hmac(hmac(hmac(`AWS4${env.AWS_SECRET_ACCESS_KEY ?? ''}`, day), region), 'ssm'), 'aws4_request')
  const signature = hmac(key, ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n')).toString('hex')
  const { host: _host, ...sent } = headers
  const response = await fetch(url, {
    method: 'POST',
    headers: { ...sent, authorization: `AWS4-HMAC-SHA256 Credential=${env.AWS_ACCESS_KEY_ID ?? ''}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}` },
    body,
  })
  const answer = (await response.json()) as { Parameters?: Array<{ Value?: string }> }
  const value = answer.Parameters?.[0]?.Value
  if (response.status !== 200 || value === undefined) throw new Error(`floor: SSM answered ${response.status}`)
  return value
}

const device = process.argv[2] ?? `floor_${process.pid}`
const token = await getParameter(process.env.THINGER_TOKEN_PARAM ?? '')
const response = await fetch(`${process.env.THINGER_API_URL}/v1/users/${encodeURIComponent(process.env.THINGER_USERNAME ?? '')}/devices`, {
  method: 'POST',
  headers: { authorization: `Bearer ${token}`, accept: 'application/json', 'content-type': 'application/json' },
  body: JSON.stringify({ device, type: 'Generic', credentials: createHash('sha256').update(device).digest('base64url').slice(0, 24) }),
})
await response.body?.cancel()
if (response.status !== 200) throw new Error(`floor: Thinger.io create answered ${response.status}`)
const floorMs = performance.now() - started
process.send?.({ importMs: 0, firstRequestMs: floorMs }, () => process.exit(0))
