// HTTP route (Silly example 1, version 2): an error counter and a 400 for a
// missing name. `errorCount` is a new key of the module state: the runtime
// gives it its initial value and reports it as absent.
exports.initialState = () => ({ accessCount: 0, errorCount: 0 });

exports.handleRequest = (req) => {
  relup.state.accessCount += 1;
  if (!req.params.name) {
    relup.state.errorCount += 1;
    return { status: 400, body: 'Error: name is required' };
  }
  return { status: 200, body: `Hello, ${req.params.name} (visitor #${relup.state.accessCount})` };
};

exports.getStats = () => ({ total: relup.state.accessCount, errors: relup.state.errorCount });

// Down: 1.2.2 has no error counter.
exports.dropErrorCount = (state) => {
  const { errorCount: _dropped, ...rest } = state;
  return rest;
};
