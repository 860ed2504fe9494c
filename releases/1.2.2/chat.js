// A WebSocket chat room. The sockets belong to the node (http_api's server),
// not to this file: they stay open across upgrades and rollbacks, and every
// message reaches whatever version of this module is current. Who is in the
// room is module state keyed by socket id, so it survives too.
exports.initialState = () => ({ members: {}, said: 0 });

const nameOf = (url) => new URL(url, 'http://demo').searchParams.get('name') ?? 'guest';

function broadcast(text) {
  for (const id of Object.keys(relup.state.members)) relup.connection(id)?.send(text);
}

exports.join = (ws) => {
  relup.state.members[ws.id] = { name: nameOf(ws.url) };
  broadcast(`* ${relup.state.members[ws.id].name} joined`);
};

// 1.2.2 speaks plain text: "name: text".
exports.say = (ws, text) => {
  const member = relup.state.members[ws.id];
  if (member === undefined) return;
  relup.state.said += 1;
  broadcast(`${member.name}: ${text}`);
};

exports.leave = (ws) => {
  const member = relup.state.members[ws.id];
  delete relup.state.members[ws.id];
  if (member !== undefined) broadcast(`* ${member.name} left`);
};

exports.members = () => Object.values(relup.state.members).map((m) => m.name).sort();
