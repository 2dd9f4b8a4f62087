// The router of Thinger's REST API: each route names its path, the action a token needs for each
// method, and the model call that answers it. Nothing else here knows a rule of Thinger's.
import type { IncomingMessage } from 'node:http'
import type { StoredAccount } from './account.js'
import { CATALOG_KINDS } from './account.js'
import type { ThingerBackend } from './backend.js'
import { assignProjects, createDevice, deleteDevice, findDeviceIn, listDevices, renderDevice, updateDevice } from './devices.js'
import { EmulatorHttpError } from './errors.js'
import { parseJson, requireObject } from './fields.js'
import { decodeSegments, ok, readBody, type Reply } from './http.js'
import { createProperties, deleteProperty, findProperty, findPropertyDevice, updateProperty } from './properties.js'
import { CATALOGS, cloneDashboard, createEntry, deleteEntry, findEntry, updateEntry } from './resources.js'
import { authorize } from './tokens.js'
import type { ThingerAction } from './types.js'

interface RouteCall {
  account: StoredAccount
  device: string
  id: string
  query: URLSearchParams
  readJson: () => Promise<unknown>
}

export interface RouteRule {
  pattern: RegExp
  params: readonly ('device' | 'id')[]
  methods: Partial<Record<string, readonly [ThingerAction, (call: RouteCall) => Reply | Promise<Reply>]>>
}

/** The routes of the API, answered from `backend`. */
export function apiRoutes (backend: ThingerBackend): readonly RouteRule[] {
  const catalogRoutes = CATALOG_KINDS.flatMap((kind): RouteRule[] => {
    const { actions } = CATALOGS[kind]
    return [
      {
        pattern: new RegExp(`^/v1/users/([^/]+)/${kind}$`),
        params: [],
        methods: {
          GET: [actions.list, ({ account }) => ok([...account.catalogs[kind].values()].map((record) => structuredClone(record)))],
          POST: [actions.create, async ({ account, readJson }) => {
            createEntry(account, kind, await readJson())
            return ok()
          }]
        }
      },
      {
        pattern: new RegExp(`^/v1/users/([^/]+)/${kind}/([^/]+)$`),
        params: ['id'],
        methods: {
          GET: [actions.read, ({ account, id }) => ok(structuredClone(findEntry(account, kind, id)))],
          PUT: [actions.update, async ({ account, id, readJson }) => {
            findEntry(account, kind, id)
            updateEntry(account, kind, id, await readJson())
            return ok()
          }],
          DELETE: [actions.remove, ({ account, id }) => {
            deleteEntry(account, kind, id)
            return ok()
          }]
        }
      }
    ]
  })

  // Handlers look their target up before reading the body: a missing target answers 404 whatever the body.
  return [
    {
      pattern: /^\/v1\/users\/([^/]+)\/devices$/,
      params: [],
      methods: {
        GET: ['ListDevices', ({ account, query }) => ok(listDevices(account, query))],
        POST: ['CreateDevice', async ({ account, readJson }) => {
            createDevice(account, requireObject(await readJson()), backend.hashIterations, backend.variant)
            return ok()
          }]
      }
    },
    {
      pattern: /^\/v1\/users\/([^/]+)\/devices\/([^/]+)$/,
      params: ['device'],
      methods: {
        GET: ['ReadDeviceStatus', ({ account, device }) => ok(renderDevice(findDeviceIn(account, device).view, backend.variant))],
        PUT: ['UpdateDevice', async ({ account, device, readJson }) => {
          const stored = findDeviceIn(account, device)
          updateDevice(account, stored, requireObject(await readJson()), backend.hashIterations, backend.variant)
            return ok()
        }],
        DELETE: ['DeleteDevice', ({ account, device }) => {
            deleteDevice(account, device, backend.variant)
            return ok()
          }]
      }
    },
    {
      pattern: /^\/v1\/users\/([^/]+)\/devices\/([^/]+)\/projects$/,
      params: ['device'],
      methods: {
        PUT: ['UpdateDeviceProjects', async ({ account, device, readJson }) => {
          findDeviceIn(account, device)
          assignProjects(account, device, await readJson())
          return ok()
        }]
      }
    },
    {
      pattern: /^\/v3\/users\/([^/]+)\/devices\/([^/]+)\/properties$/,
      params: ['device'],
      methods: {
        GET: ['ListDeviceProperties', ({ account, device }) => {
          findPropertyDevice(account, device, backend.variant)
          return ok([...account.properties.get(device)?.values() ?? []].map((property) => structuredClone(property)))
        }],
        POST: ['CreateDeviceProperty', async ({ account, device, readJson }) => {
          findPropertyDevice(account, device, backend.variant)
          createProperties(account, device, await readJson(), backend.variant)
          return ok()
        }]
      }
    },
    {
      pattern: /^\/v3\/users\/([^/]+)\/devices\/([^/]+)\/properties\/([^/]+)$/,
      params: ['device', 'id'],
      methods: {
        GET: ['ReadDeviceProperty', ({ account, device, id }) => ok(structuredClone(findProperty(account, device, id, backend.variant)))],
        PUT: ['UpdateDeviceProperty', async ({ account, device, id, readJson }) => {
          findProperty(account, device, id, backend.variant)
          updateProperty(account, device, id, await readJson(), backend.variant)
          return ok()
        }],
        DELETE: ['DeleteDeviceProperty', ({ account, device, id }) => {
          deleteProperty(account, device, id, backend.variant)
          return ok()
        }]
      }
    },
    ...catalogRoutes,
    {
      pattern: /^\/v1\/users\/([^/]+)\/dashboards\/([^/]+)\/clone$/,
      params: ['id'],
      methods: {
        POST: ['CloneDashboard', async ({ account, id, readJson }) => {
          findEntry(account, 'dashboards', id)
          cloneDashboard(account, id, await readJson())
          return ok()
        }]
      }
    }
  ]
}

// The query form of the token works too (Thinger accepts it), though clients must not use it.
function bearerToken (req: IncomingMessage, url: URL): string | undefined {
  const header = req.headers.authorization
  return header === undefined
    ? url.searchParams.get('authorization') ?? undefined
    : /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1]
}

export async function answerApi (backend: ThingerBackend, routes: readonly RouteRule[], req: IncomingMessage, url: URL): Promise<Reply> {
  for (const route of routes) {
    const match = route.pattern.exec(url.pathname)
    if (match === null) continue
    const handler = route.methods[req.method ?? 'GET']
    if (handler === undefined) break
    const [user = '', ...values] = decodeSegments(match)
    const [action, answer] = handler
    authorize(backend.grants, bearerToken(req, url), user, action)
    const call: RouteCall = { account: backend.accountOf(user), device: '', id: '', query: url.searchParams, readJson: async () => parseJson(await readBody(req)) }
    route.params.forEach((param, index) => {
      call[param] = values[index] ?? ''
    })
    return answer(call)
  }
  throw new EmulatorHttpError(404, 'not found')
}

