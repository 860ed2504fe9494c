// Live settings (Silly example 3, version 2): new keys and validation.
const DEFAULTS = {
  max_connections: 1000,
  timeout: 30,
  log_level: 'INFO',
  enable_cache: true, // new in 1.2.3
  cache_ttl: 300, // new in 1.2.3
};
const ADDED_IN_1_2_3 = ['enable_cache', 'cache_ttl'];

const validators = {
  max_connections: (v) => typeof v === 'number' && v > 0 && v <= 10000,
  timeout: (v) => typeof v === 'number' && v > 0,
  log_level: (v) => ['DEBUG', 'INFO', 'WARN', 'ERROR'].includes(v),
};

exports.initialState = () => ({ settings: { ...DEFAULTS } });

exports.get = (key) => relup.state.settings[key];

exports.set = (key, value) => {
  const valid = validators[key];
  if (valid && !valid(value)) throw new Error(`Invalid value for ${key}`);
  relup.state.settings[key] = value;
  return value;
};

exports.getAll = () => ({ ...relup.state.settings });

// Up: merge the new keys into the live settings without overwriting values
// an operator changed (the Silly guide's "merge new configuration items").
exports.addNewSettings = (state) => {
  for (const [key, value] of Object.entries(DEFAULTS)) {
    if (!(key in state.settings)) state.settings[key] = value;
  }
  return state;
};

// Down: 1.2.2 does not know the new keys; remove them so its view is exact.
exports.removeNewSettings = (state) => {
  for (const key of ADDED_IN_1_2_3) delete state.settings[key];
  return state;
};
