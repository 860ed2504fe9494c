// HTTP route with an access counter (Silly example 1, version 1).
exports.initialState = () => ({ accessCount: 0 });

exports.handleRequest = (req) => {
  relup.state.accessCount += 1;
  return { status: 200, body: `Hello, visitor #${relup.state.accessCount}` };
};

exports.getStats = () => ({ total: relup.state.accessCount });
