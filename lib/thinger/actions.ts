/**
 * The permission a Thinger.io access token needs for each call this service makes: Thinger names
 * an action after the OpenAPI summary of its operation (reading one device is `ReadDeviceStatus`;
 * there is no `ReadDevice`). The client names its calls with them, so an error says which action
 * a token lacks.
 */
export const DEVICE_ACTIONS = {
  read: 'ReadDeviceStatus',
  create: 'CreateDevice',
  update: 'UpdateDevice',
  remove: 'DeleteDevice',
  setProjects: 'UpdateDeviceProjects',
  readProperty: 'ReadDeviceProperty',
  createProperty: 'CreateDeviceProperty',
  updateProperty: 'UpdateDeviceProperty',
} as const

/** Read and create actions of the account-level resources profiles use. */
export const RESOURCE_ACTIONS = {
  types: { read: 'ReadTypeConfig', create: 'CreateType' },
  groups: { read: 'ReadGroupConfig', create: 'CreateGroup' },
  products: { read: 'ReadProductConfig', create: 'CreateProduct' },
  buckets: { read: 'ReadBucketConfig', create: 'CreateBucket' },
  dashboards: { read: 'ReadDashboardConfig', create: 'CreateDashboard' },
  projects: { read: 'ReadProjectConfig', create: 'CreateProject' },
} as const

export const CLONE_DASHBOARD_ACTION = 'CloneDashboard'

/** A Thinger.io action this service may call. */
export type ThingerAction =
  | (typeof DEVICE_ACTIONS)[keyof typeof DEVICE_ACTIONS]
  | (typeof RESOURCE_ACTIONS)[keyof typeof RESOURCE_ACTIONS][keyof (typeof RESOURCE_ACTIONS)['types']]
  | typeof CLONE_DASHBOARD_ACTION
