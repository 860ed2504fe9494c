// The conformance app's counter at 1.1.0 (test/conformance/harness.ts).
exports.init = () => ({ count: 0, step: 1 });

exports.handleCall = async (msg, state) => {
  switch (msg.op) {
    case 'incr':
      state.count += state.step;
      return { reply: state.count, state };
    case 'get':
      return { reply: state.count, state };
    case 'version':
      return { reply: '1.1.0', state };
    case 'state':
      return { reply: state, state };
    case 'sleep':
      await new Promise((resolve) => setTimeout(resolve, msg.ms));
      return { reply: 'slept', state };
    default:
      throw new Error(`unknown call ${msg.op}`);
  }
};

// Up from 1.0.0: every increment adds extra.step.
exports.addStep = (state, info) => ({ ...state, step: info.extra.step });

// Down to 1.0.0: 1.0.0 counts by one.
exports.dropStep = (state) => {
  const { step, ...rest } = state;
  return rest;
};
