/** Configuration: TOML file → validated domain types. See docs/configuration.md. */
export * from './types.js';
export { check, addressesOverlap } from './check.js';
export { configToToml, formatConfig } from './format.js';
export {
  ConfigError,
  defaultConfig,
  formatKeyPath,
  formatProblem,
  loadConfigFile,
  loadConfigText,
  resolveConfig,
  validateDocument,
  type ConfigErrorCode,
  type ConfigResult,
  type ResolvedConfig,
} from './load.js';
export { DEFAULT_CONFIG_PATH, DEFAULTS, LISTENER_DEFAULTS } from './schema.js';
export {
  MAX_DURATION_MS,
  cidrMatcher,
  formatCidr,
  formatDuration,
  formatHost,
  formatHostPort,
  formatMode,
  parseCidr,
  parseDuration,
  parseHost,
  parseHostPort,
  parseMode,
  parseRefid,
  type DurationOptions,
  type HostPortOptions,
  type ValueResult,
} from './values.js';
