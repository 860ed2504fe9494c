// The conformance app's counter at 1.0.0 (test/conformance/harness.ts).
exports.init = () => ({ count: 0 });

exports.handleCall = async (msg, state) => {
  switch (msg.op) {
    case 'incr':
      state.count += 1;
      return { reply: state.count, state };
    case 'get':
      return { reply: state.count, state };
    case 'version':
      return { reply: '1.0.0', state };
    case 'state':
      return { reply: state, state };
    case 'sleep':
      await new Promise((resolve) => setTimeout(resolve, msg.ms));
      return { reply: 'slept', state };
    default:
      throw new Error(`unknown call ${msg.op}`);
  }
};

