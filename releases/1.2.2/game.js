// Players and scores (Silly example 2, version 1), kept by the `game`
// process: its state is handed from version to version by the runtime.
exports.init = () => ({ players: {}, ticks: 0 });

exports.handleCall = (msg, state) => {
  switch (msg.type) {
    case 'add_player':
      state.players[msg.id] = { name: msg.name, score: 0 };
      return { reply: state.players[msg.id], state };
    case 'add_score': {
      const player = state.players[msg.id];
      if (player) player.score += msg.points;
      return { reply: player ?? null, state };
    }
    case 'get_player':
      return { reply: state.players[msg.id] ?? null, state };
    case 'stats':
      return { reply: { players: Object.keys(state.players).length, ticks: state.ticks }, state };
    default:
      throw new Error(`unknown call ${msg.type}`);
  }
};

exports.handleCast = (msg, state) => {
  if (msg.type === 'tick') state.ticks += 1;
  return state;
};

// Started by a runtime timer; the timer always calls the current version.
exports.tick = () => relup.cast('game', { type: 'tick' });
