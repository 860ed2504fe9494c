// Players and scores (Silly example 2, version 2): level and experience.
exports.init = () => ({ players: {}, ticks: 0 });

function addExp(player, exp) {
  player.exp += exp;
  while (player.exp >= player.level * 100) {
    player.exp -= player.level * 100;
    player.level += 1;
  }
}

exports.handleCall = (msg, state) => {
  switch (msg.type) {
    case 'add_player':
      state.players[msg.id] = { name: msg.name, score: 0, level: 1, exp: 0 };
      return { reply: state.players[msg.id], state };
    case 'add_score': {
      const player = state.players[msg.id];
      if (player) {
        player.score += msg.points;
        addExp(player, Math.floor(msg.points / 10));
      }
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
  if (msg.type === 'tick') {
    state.ticks += 1;
    // New in 1.2.3: every tick of the game clock gives each player 1 experience.
    for (const player of Object.values(state.players)) addExp(player, 1);
  }
  if (msg.type === 'add_exp' && state.players[msg.id]) addExp(state.players[msg.id], msg.exp);
  return state;
};

exports.addExp = (id, exp) => relup.cast('game', { type: 'add_exp', id, exp });

exports.tick = () => relup.cast('game', { type: 'tick' });

// Up: existing players start at level 1 with no experience (extra.startLevel).
exports.addLevels = (state, info) => {
  for (const player of Object.values(state.players)) {
    if (player.level === undefined) {
      player.level = info.extra?.startLevel ?? 1;
      player.exp = 0;
    }
  }
  return state;
};

// Down: 1.2.2 players have a name and a score only.
exports.dropLevels = (state) => {
  for (const player of Object.values(state.players)) {
    delete player.level;
    delete player.exp;
  }
  return state;
};
