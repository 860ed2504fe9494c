// The chat room at 1.2.3: messages become JSON with a sequence number per
// room. Sockets opened on 1.2.2 stay open through the upgrade; their next
// message is answered in the new format.
exports.initialState = () => ({ members: {}, said: 0, seq: 0 });

const nameOf = (url) => new URL(url, 'http://demo').searchParams.get('name') ?? 'guest';

function broadcast(message) {
  const text = JSON.stringify(message);
  for (const id of Object.keys(relup.state.members)) relup.connection(id)?.send(text);
}

exports.join = (ws) => {
  relup.state.members[ws.id] = { name: nameOf(ws.url), joinedAt: relup.state.seq };
  broadcast({ seq: ++relup.state.seq, event: 'join', name: relup.state.members[ws.id].name });
};

// 1.2.3 speaks JSON: { seq, from, text }.
exports.say = (ws, text) => {
  const member = relup.state.members[ws.id];
  if (member === undefined) return;
  relup.state.said += 1;
  broadcast({ seq: ++relup.state.seq, from: member.name, text });
};

exports.leave = (ws) => {
  const member = relup.state.members[ws.id];
  delete relup.state.members[ws.id];
  if (member !== undefined) broadcast({ seq: ++relup.state.seq, event: 'leave', name: member.name });
};

exports.members = () => Object.values(relup.state.members).map((m) => m.name).sort();

// Up: members who joined on 1.2.2 get a joinedAt (the seq counter arrives as an absent key).
exports.addJoinedAt = (state) => {
  for (const member of Object.values(state.members)) member.joinedAt ??= 0;
};

// Down (run by this version before the switch back): 1.2.2 knows neither seq nor joinedAt.
exports.dropJoinedAt = (state) => {
  for (const member of Object.values(state.members)) delete member.joinedAt;
  delete state.seq;
};
