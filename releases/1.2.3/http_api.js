// The HTTP front of the demo. The server belongs to the node, not to this
// file: requests reach whatever version of `handle` is current.
exports.start = () => {
  // WebSocket upgrades on the same server go to the chat room (handlers by name: always the current code).
  relup.listen({ host: relup.config.host ?? '127.0.0.1', port: relup.config.port ?? 0, handler: 'handle', websocket: { onOpen: 'chatOpen', onMessage: 'chatMessage', onClose: 'chatClose' } });
  relup.setInterval(relup.config.tickMs ?? 1000, 'game', 'tick');
};

exports.handle = async (req) => {
  const url = new URL(req.url, 'http://demo');
  const parts = url.pathname.split('/').filter(Boolean);
  if (req.method === 'GET' && parts[0] === 'hello') {
    const name = url.searchParams.get('name');
    return relup.module('route').handleRequest({ params: name === null ? {} : { name } });
  }
  if (req.method === 'GET' && parts[0] === 'stats') {
    return { status: 200, json: relup.module('route').getStats() };
  }
  if (parts[0] === 'players') {
    if (req.method === 'POST' && parts.length === 1) {
      const { id, name } = await req.json();
      return { status: 201, json: await relup.call('game', { type: 'add_player', id, name }) };
    }
    if (req.method === 'POST' && parts[2] === 'score') {
      const { points } = await req.json();
      return { status: 200, json: await relup.call('game', { type: 'add_score', id: parts[1], points }) };
    }
    if (req.method === 'GET' && parts.length === 2) {
      const player = await relup.call('game', { type: 'get_player', id: parts[1] });
      return player === null ? { status: 404, body: 'no such player' } : { status: 200, json: player };
    }
  }
  if (parts[0] === 'config') {
    const config = relup.module('config');
    if (req.method === 'GET') return { status: 200, json: config.getAll() };
    if (req.method === 'PUT' && parts.length === 2) {
      const { value } = await req.json();
      try {
        return { status: 200, json: { [parts[1]]: config.set(parts[1], value) } };
      } catch (e) {
        return { status: 400, body: String(e.message) };
      }
    }
  }
  if (req.method === 'GET' && parts[0] === 'chat') return { status: 200, json: relup.module('chat').members() };
  if (parts[0] === 'version') return { status: 200, body: relup.version };
  return { status: 404, body: 'not found' };
};

exports.chatOpen = (ws) => relup.module('chat').join(ws);
exports.chatMessage = (ws, text) => relup.module('chat').say(ws, String(text));
exports.chatClose = (ws) => relup.module('chat').leave(ws);
