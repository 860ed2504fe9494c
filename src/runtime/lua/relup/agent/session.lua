-- relup.agent.session: the handshake proofs and session-bound (sealed)
-- frames of docs/protocol.md, protocol 2.
--
--   proof   = HMAC-SHA256(secret, "relup-auth-v1\n" .. nodeNonce .. "\n" .. clientNonce)
--   node    = HMAC-SHA256(secret, "relup-auth-node-v1\n" .. clientNonce .. "\n" .. nodeNonce)
--   K       = HMAC-SHA256(secret, "relup-session-v1\n" .. nodeNonce .. "\n" .. clientNonce)
--   tag     = HMAC-SHA256(K, dir .. u64be(seq) .. json), dir "c2n" or "n2c"
-- Nonces are the base64 texts as sent.

local byte = string.byte
local pack = string.pack
local sub = string.sub
local open = io.open

local hmac = require "silly.crypto.hmac"
local base64 = require "silly.encoding.base64"

local M = {}

M.TAG_BYTES = 32

local function mac(key, data)
	return hmac.digest(key, data, "sha256")
end

-- Equal strings, compared in time that depends only on their lengths.
function M.equal(a, b)
	if #a ~= #b then
		return false
	end
	local diff = 0
	for i = 1, #a do
		diff = diff | (byte(a, i) ~ byte(b, i))
	end
	return diff == 0
end

-- 32 bytes from the kernel's random source, base64: Silly's randomkey is
-- not a cryptographic source, a nonce must be.
function M.nonce()
	local f, err = open("/dev/urandom", "rb")
	if not f then
		error("cannot read /dev/urandom: " .. tostring(err))
	end
	local bytes = f:read(32)
	f:close()
	if not bytes or #bytes ~= 32 then
		error("short read from /dev/urandom")
	end
	return base64.encode(bytes)
end

function M.client_proof(secret, node_nonce, client_nonce)
	return base64.encode(mac(secret, "relup-auth-v1\n" .. node_nonce .. "\n" .. client_nonce))
end

function M.node_proof(secret, node_nonce, client_nonce)
	return base64.encode(mac(secret, "relup-auth-node-v1\n" .. client_nonce .. "\n" .. node_nonce))
end

function M.key(secret, node_nonce, client_nonce)
	return mac(secret, "relup-session-v1\n" .. node_nonce .. "\n" .. client_nonce)
end

function M.tag(key, dir, seq, json)
	return mac(key, dir .. pack(">I8", seq) .. json)
end

-- One side's sealer and opener, each with its own counter from 0.
function M.node(key)
	local sent, received = 0, 0
	local s = {}
	function s.seal(json)
		local tag = M.tag(key, "n2c", sent, json)
		sent = sent + 1
		return json .. tag
	end
	-- The JSON of a sealed frame, or nil when its tag does not verify.
	function s.open(body)
		if #body < M.TAG_BYTES then
			return nil, "a sealed frame shorter than its tag"
		end
		local json = sub(body, 1, #body - M.TAG_BYTES)
		local given = sub(body, #body - M.TAG_BYTES + 1)
		if not M.equal(M.tag(key, "c2n", received, json), given) then
			return nil, "sealed frame " .. received .. " does not verify"
		end
		received = received + 1
		return json
	end
	return s
end

return M
