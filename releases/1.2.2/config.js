// Live settings (Silly example 3, version 1). The settings live in the
// runtime-owned module state, so they survive every reload of this file.
exports.initialState = () => ({
  settings: { max_connections: 1000, timeout: 30, log_level: 'INFO' },
});

exports.get = (key) => relup.state.settings[key];

exports.set = (key, value) => {
  relup.state.settings[key] = value;
  return value;
};

exports.getAll = () => ({ ...relup.state.settings });
