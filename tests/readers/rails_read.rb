# Reads cache keys back through Rails' own ActiveSupport::Cache::RedisCacheStore
# (Debian's ruby-activesupport, Rails 6.1, over ruby-redis), or its
# MemCacheStore over Dalli (Debian's ruby-dalli 3.0) with --memcached, the
# way a Rails application does, and prints one JSON line per key:
#
#   {"key":..., "hit":true, "equal":true, "calls":{"read":true,"exist?":true,"fetch":true},
#    "value":..., "error":null}
#
# hit: every call saw the entry (`read` returned it, `exist?` said true, and
# `fetch` returned it without running its block); equal: the value `read`
# returned is the intended one, strictly (Hash with String keys in the same
# order, Integer vs Float, UTF-8 Strings); error: every exception a call raised, rescued and
# reported instead of crashing (a Rails app would not rescue them).
#
# Usage:
#   ruby rails_read.rb --url URL [--namespace NS] [--bytes] VALUES.json   read every key of VALUES.json
#   ruby rails_read.rb --url URL [--namespace NS] --write VALUES.json [--expires-in S]
#                                                                the app itself writes them
#   ruby rails_read.rb --url URL [--namespace NS] --self-test   Rails writes, then reads back
#
# --memcached HOST:PORT,HOST:PORT,... instead of --url: the MemCacheStore of
# that pool (`config.cache_store = :mem_cache_store, "HOST:PORT", …`).
#
# --cluster URL,URL,... instead of --url: the RedisCacheStore over a Redis
# Cluster client with these seed nodes (`redis: Redis.new(cluster: [...])`,
# ruby-redis 4's cluster support), which routes each key to its slot's master.
#
# --bytes: VALUES.json maps each key to the hex of bytes that are not UTF-8,
# which the application caches as a binary String (ASCII-8BIT).
#
# --compress-threshold BYTES has the store compress what it writes from that
# size on (Rails' `compress_threshold`; reading accepts compressed entries
# whatever it is set to).
#
# VALUES.json maps each key to its intended value: the JSON document the
# plugin produced (JSON.parse gives the Ruby object Rails should read), or a
# plain string for non-JSON bytes. Exit status: 0 when every line was
# printed (hits and misses alike), 2 on bad arguments.

require "json"
require "optparse"
require "active_support"
require "active_support/cache"
require "active_support/cache/redis_cache_store"
require "active_support/cache/mem_cache_store"

# The values --self-test has Rails write and read back: every JSON type,
# nested, a bignum, a non-ASCII string, a long value.
SELF_TEST = {
  "preheat-self-test/object" => { "id" => 7, "name" => "Grüße", "tags" => ["a", "b"],
                                  "nested" => { "t" => true, "f" => false, "n" => nil, "x" => 0.5 } },
  "preheat-self-test/array" => [1, "two", 3.25, [], {}],
  "preheat-self-test/integer" => 47,
  "preheat-self-test/bignum" => 123_456_789_012_345_678_901_234_567_890,
  "preheat-self-test/float" => 0.1,
  "preheat-self-test/string" => "plain text, ünïcödé",
  "preheat-self-test/false" => false,
  # Long and repetitive: compressed when a threshold is set.
  "preheat-self-test/long" => { "text" => "warm " * 1000 },
}.freeze

# Strict equality of a decoded value with the intended one: same classes
# (Integer is not Float, true is not 1), Hash keys compared as they are
# (String keys, not Symbols) and in the same order (the order the
# application iterates and renders them in), Strings with the same bytes
# and encoding.
def same?(got, want)
  case want
  when Hash
    got.is_a?(Hash) && got.keys == want.keys && want.all? { |k, v| same?(got[k], v) }
  when Array
    got.is_a?(Array) && got.size == want.size && got.zip(want).all? { |g, w| same?(g, w) }
  when String
    got.is_a?(String) && got.encoding == want.encoding && got.b == want.b
  when Integer
    got.is_a?(Integer) && got == want
  when Float
    got.is_a?(Float) && (got == want || (got.nan? && want.nan?))
  else
    got.equal?(want)
  end
end

# The decoded value as JSON, or its inspect when it is not JSON-able.
def shown(value)
  JSON.parse(JSON.generate([value]))[0]
rescue StandardError
  value.inspect
end

# Reads one key with read, exist? and fetch; never raises.
def check(cache, key, want)
  errors = []
  calls = {}
  value = nil
  begin
    value = cache.read(key)
    calls["read"] = !value.nil? || want.nil?
  rescue StandardError => e
    calls["read"] = false
    errors << "read: #{e.class}: #{e.message}"
  end
  begin
    calls["exist?"] = cache.exist?(key)
  rescue StandardError => e
    calls["exist?"] = false
    errors << "exist?: #{e.class}: #{e.message}"
  end
  begin
    ran = false
    # skip_nil: a miss must not write anything back.
    cache.fetch(key, skip_nil: true) { ran = true; nil }
    calls["fetch"] = !ran
  rescue StandardError => e
    calls["fetch"] = false
    errors << "fetch: #{e.class}: #{e.message}"
  end
  hit = calls.values.all?
  {
    "key" => key,
    "hit" => hit,
    "equal" => hit && same?(value, want),
    "calls" => calls,
    "value" => shown(value),
    "error" => errors.empty? ? nil : errors.join("; "),
  }
end

options = { namespace: nil, mode: :read, expires_in: nil, bytes: false }
parser = OptionParser.new do |o|
  o.banner = "usage: ruby rails_read.rb --url URL [--namespace NS] (VALUES.json | --write VALUES.json | --self-test)"
  o.on("--url URL", "Redis URL of the cache store") { |v| options[:url] = v }
  o.on("--cluster URLS", "the RedisCacheStore over a Redis Cluster with these comma-separated seed URLs") do |v|
    options[:cluster] = v.split(",")
  end
  o.on("--memcached SERVERS", "the MemCacheStore of these comma-separated host:port") do |v|
    options[:memcached] = v.split(",")
  end
  o.on("--namespace NS", "the store's namespace (default: none)") { |v| options[:namespace] = v }
  o.on("--write", "the application writes the values itself") { options[:mode] = :write }
  o.on("--expires-in SECONDS", Integer, "expiry of --write") { |v| options[:expires_in] = v }
  o.on("--bytes", "VALUES.json holds the hex of binary values") { options[:bytes] = true }
  o.on("--self-test", "Rails writes sample values, then reads them back") { options[:mode] = :self_test }
  o.on("--compress-threshold BYTES", Integer, "compress written values from this size on") do |v|
    options[:compress_threshold] = v
  end
end
begin
  parser.parse!
  unless options[:url] || options[:memcached] || options[:cluster]
    raise OptionParser::MissingArgument, "--url, --cluster or --memcached"
  end
  raise OptionParser::NeedlessArgument, "VALUES.json with --self-test" if options[:mode] == :self_test && !ARGV.empty?
  raise OptionParser::MissingArgument, "VALUES.json" if options[:mode] != :self_test && ARGV.size != 1
rescue OptionParser::ParseError => e
  warn "rails_read.rb: #{e.message}\n#{parser.banner}"
  exit 2
end

store_options = { namespace: options[:namespace] }
store_options[:compress_threshold] = options[:compress_threshold] if options[:compress_threshold]
cache = if options[:memcached]
          # Dalli's own failover would move a dead server's keys elsewhere; the readers must not.
          ActiveSupport::Cache::MemCacheStore.new(*options[:memcached], failover: false, **store_options)
        elsif options[:cluster]
          ActiveSupport::Cache::RedisCacheStore.new(redis: Redis.new(cluster: options[:cluster]), **store_options)
        else
          ActiveSupport::Cache::RedisCacheStore.new(url: options[:url], **store_options)
        end
STDOUT.sync = true

case options[:mode]
when :self_test
  SELF_TEST.each { |key, value| cache.write(key, value, expires_in: 600) }
  SELF_TEST.each { |key, value| puts JSON.generate(check(cache, key, value)) }
  SELF_TEST.each_key { |key| cache.delete(key) }
when :write
  JSON.parse(File.read(ARGV[0])).each do |key, value|
    cache.write(key, value, expires_in: options[:expires_in])
    puts JSON.generate({ "key" => key, "written" => true })
  end
else
  JSON.parse(File.read(ARGV[0])).each do |key, want|
    want = [want].pack("H*") if options[:bytes]
    puts JSON.generate(check(cache, key, want))
  end
end
