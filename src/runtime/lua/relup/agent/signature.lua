-- relup.agent.signature: signed bundles on a Lua node. `manifest.sig` holds
-- an ed25519 signature of the exact bytes of `manifest.json`
-- (src/release/bundle-signature.ts); with a public key configured, a bundle
-- is refused unless it verifies, before any of its content is used.
--
-- Silly's pkey binding verifies through a digest, which ed25519 does not
-- take, so the check runs `openssl pkeyutl -verify -rawin` (OpenSSL 3), the
-- library Silly is built against.

local open = io.open
local tostring = tostring

local json = require "relup.agent.json"
local base64 = require "silly.encoding.base64"

local M = {}

local function quote(s)
	return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function write(path, data)
	local f = open(path, "wb")
	if not f then
		return false
	end
	f:write(data)
	f:close()
	return true
end

--[[
Verify `sig_bytes` (manifest.sig) over `manifest_bytes` with the PEM public
key file `key_file`; `scratch` is a directory for the two temporary files.
Returns true, or nil and why.
]]
function M.verify(manifest_bytes, sig_bytes, key_file, scratch)
	if sig_bytes == nil then
		return nil, "the bundle is not signed, and this node only accepts bundles signed by " .. key_file .. " (relup release sign)"
	end
	local sig = json.decode(sig_bytes)
	if type(sig) ~= "table" or sig.format ~= 1 or sig.algorithm ~= "ed25519" or type(sig.signature) ~= "string" then
		return nil, "manifest.sig is not a relup signature"
	end
	local raw = base64.decode(sig.signature)
	if not raw or #raw ~= 64 then
		return nil, "manifest.sig does not hold an ed25519 signature"
	end
	local m = scratch .. "/.verify-manifest.lua.tmp"
	local s = scratch .. "/.verify-signature.lua.tmp"
	if not (write(m, manifest_bytes) and write(s, raw)) then
		return nil, "cannot write in " .. scratch .. " to check the signature"
	end
	local ok = os.execute("openssl pkeyutl -verify -pubin -inkey " .. quote(key_file) .. " -rawin -in " .. quote(m) .. " -sigfile " .. quote(s) .. " >/dev/null 2>&1")
	os.remove(m)
	os.remove(s)
	if not ok then
		return nil, "the signature does not verify with " .. key_file .. " (it names key " .. tostring(sig.key) .. "): the bundle was changed after signing, or signed with another key (or openssl is missing)"
	end
	return true
end

return M
