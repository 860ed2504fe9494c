// The conformance app's counter at 1.2.0 (test/conformance/harness.ts).
exports.init = () => ({ count: 0, step: 1 });

exports.handleCall = async (msg, state) => {
  switch (msg.op) {
    case 'incr':
      state.count += state.step;
      return { reply: state.count, state };
    case 'get':
      return { reply: state.count, state };
    case 'version':
      return { reply: '1.2.0', state };
    case 'state':
      return { reply: state, state };
    case 'sleep':
      await new Promise((resolve) => setTimeout(resolve, msg.ms));
      return { reply: 'slept', state };
    default:
      throw new Error(`unknown call ${msg.op}`);
  }
};

// A migration that fails after changing its state: the upgrade must roll back with the state untouched.
exports.crash = (state) => {
  state.count = -1;
  throw new Error(`migration crashed at count ${state.count}`);
};
