<?php
// Reads cache keys back through Laravel's own cache (Debian's
// php-laravel-framework, Laravel 8.83): a real Illuminate\Cache\CacheManager
// booted in a small container (no full application), with the redis store
// over php-redis or the database store over PDO (SQLite or PostgreSQL), the
// way a Laravel application calls it, and prints one JSON line per key:
//
//   {"key":..., "hit":true, "equal":true, "calls":{"get":true,"has":true}, "value":..., "error":null}
//
// hit: get() returned the entry and has() said true; equal: the value get()
// returned is identical (===: same types, same keys in the same order) to
// what get() returns when the application caches the intended value itself
// (json_decode($v, true), put and read back on a scratch key: the redis
// store hands numbers back as strings, the application sees the same); error: every exception or PHP notice a call
// raised (notices become exceptions, as in a Laravel application), caught
// and reported instead of crashing.
//
// Usage:
//   php laravel_read.php STORE [--cache-prefix P] [--bytes] VALUES.json  read every key of VALUES.json
//   php laravel_read.php STORE [--cache-prefix P] --write VALUES.json [--ttl S]  the app writes them
//   php laravel_read.php STORE [--cache-prefix P] --self-test            Laravel writes, then reads back
//   php laravel_read.php STORE [--cache-prefix P] --key KEY [--key KEY…]  read these keys ("equal": null)
// where STORE is
//   --store redis --redis-url redis://HOST:PORT/DB [--redis-prefix P]
//   --store redis --redis-cluster HOST:PORT,HOST:PORT,... [--redis-prefix P]
//   --store database --db sqlite:///PATH | postgres://USER@HOST:PORT/DB [--table cache]
//   --store memcached --servers HOST:PORT,HOST:PORT,... [--ketama]
//
// --redis-cluster is a Redis Cluster of those seed nodes, as Laravel's
// config/database.php lists it under redis.clusters (php-redis's
// RedisCluster, which routes each key to its slot's master).
//
// The memcached store is php-memcached (libmemcached) with the servers in
// that order, each of weight 100 as Laravel's config/cache.php lists them;
// --ketama sets Memcached::OPT_LIBKETAMA_COMPATIBLE in its options, else
// libmemcached's default distribution (modula) holds.
//
// --cache-prefix is config('cache.prefix') (the redis store adds a colon
// after it, as Laravel 8 does); --redis-prefix is
// config('database.redis.options.prefix'). Both default to empty.
// VALUES.json maps each key to its intended value: the JSON document the
// plugin produced, or a plain string for non-JSON text; with --bytes, the
// hex of bytes that are not UTF-8 (a PHP string holds them as they are). Exit status: 0 when
// every line was printed (hits and misses alike), 2 on bad arguments.

require '/usr/share/php/Illuminate/autoload.php';

use Illuminate\Cache\CacheManager;
use Illuminate\Cache\MemcachedConnector;
use Illuminate\Config\Repository as Config;
use Illuminate\Container\Container;
use Illuminate\Database\Connectors\ConnectionFactory;
use Illuminate\Database\DatabaseManager;
use Illuminate\Redis\RedisManager;

const USAGE = "usage: php laravel_read.php --store redis --redis-url URL [--redis-prefix P] | --store database --db URL [--table T]\n"
    . "       [--cache-prefix P] ([--bytes] VALUES.json | --write VALUES.json [--ttl S] | --self-test | --key KEY...)\n";

// The values --self-test has Laravel write and read back: every JSON type,
// nested, an integer beyond int64 (a float in PHP), a non-ASCII string, and
// a string with a NUL byte (base64 on the PostgreSQL database store).
const SELF_TEST = [
    'preheat-self-test/object' => ['id' => 7, 'name' => 'Grüße', 'tags' => ['a', 'b'],
        'nested' => ['t' => true, 'f' => false, 'n' => null, 'x' => 0.5]],
    'preheat-self-test/array' => [1, 'two', 3.25, [], ['k' => 'v']],
    'preheat-self-test/integer' => 47,
    'preheat-self-test/big' => 123456789012345678901234567890,
    'preheat-self-test/float' => 0.1,
    'preheat-self-test/string' => 'plain text, ünïcödé',
    'preheat-self-test/nul' => "a\0b",
    'preheat-self-test/false' => false,
];

function fail_usage(string $why): void
{
    fwrite(STDERR, "laravel_read.php: $why\n" . USAGE);
    exit(2);
}

/** The parsed command line. */
function arguments(array $argv): array
{
    $opts = ['store' => null, 'redis-url' => null, 'redis-prefix' => '', 'db' => null, 'table' => 'cache',
        'cache-prefix' => '', 'ttl' => null, 'mode' => 'read', 'values' => null, 'keys' => [], 'bytes' => false,
        'servers' => null, 'ketama' => false, 'redis-cluster' => null];
    $valued = ['store', 'redis-url', 'redis-cluster', 'redis-prefix', 'db', 'table', 'cache-prefix', 'ttl', 'servers'];
    $rest = [];
    for ($i = 1; $i < count($argv); $i++) {
        $arg = $argv[$i];
        if ($arg === '--write') {
            $opts['mode'] = 'write';
        } elseif ($arg === '--bytes') {
            $opts['bytes'] = true;
        } elseif ($arg === '--ketama') {
            $opts['ketama'] = true;
        } elseif ($arg === '--self-test') {
            $opts['mode'] = 'self-test';
        } elseif ($arg === '--key') {
            if (!isset($argv[$i + 1])) {
                fail_usage('--key needs a value');
            }
            $opts['mode'] = 'keys';
            $opts['keys'][] = $argv[++$i];
        } elseif (str_starts_with($arg, '--') && in_array(substr($arg, 2), $valued, true)) {
            if (!isset($argv[$i + 1])) {
                fail_usage("$arg needs a value");
            }
            $opts[substr($arg, 2)] = $argv[++$i];
        } elseif (str_starts_with($arg, '--')) {
            fail_usage("unknown option $arg");
        } else {
            $rest[] = $arg;
        }
    }
    $no_file = in_array($opts['mode'], ['self-test', 'keys'], true);
    if ($no_file ? count($rest) !== 0 : count($rest) !== 1) {
        fail_usage($no_file ? "no VALUES.json with --{$opts['mode']}" : 'expected one VALUES.json');
    }
    $opts['values'] = $rest[0] ?? null;
    if ($opts['store'] === 'redis' && ($opts['redis-url'] === null) === ($opts['redis-cluster'] === null)) {
        fail_usage('--store redis needs --redis-url or --redis-cluster');
    }
    if ($opts['store'] === 'database' && $opts['db'] === null) {
        fail_usage('--store database needs --db');
    }
    if ($opts['store'] === 'memcached' && $opts['servers'] === null) {
        fail_usage('--store memcached needs --servers');
    }
    if (!in_array($opts['store'], ['redis', 'database', 'memcached'], true)) {
        fail_usage('--store must be redis, database or memcached');
    }
    return $opts;
}

/** The database connection config for a sqlite:// or postgres:// URL. */
function db_connection(string $url): array
{
    if (str_starts_with($url, 'sqlite://')) {
        return ['driver' => 'sqlite', 'database' => substr($url, strlen('sqlite://')), 'prefix' => ''];
    }
    $u = parse_url($url);
    if ($u === false || !in_array($u['scheme'] ?? '', ['postgres', 'postgresql'], true)) {
        fail_usage("--db $url: expected sqlite:///PATH or postgres://USER@HOST:PORT/DB");
    }
    return ['driver' => 'pgsql', 'host' => $u['host'] ?? '127.0.0.1', 'port' => $u['port'] ?? 5432,
        'database' => ltrim($u['path'] ?? '/postgres', '/'), 'username' => $u['user'] ?? 'postgres',
        'password' => $u['pass'] ?? '', 'charset' => 'utf8', 'prefix' => '', 'schema' => 'public',
        'sslmode' => 'disable'];
}

/** The cache repository of the chosen store, from a container of our own. */
function cache_store(array $opts): Illuminate\Contracts\Cache\Repository
{
    $app = new Container();
    Container::setInstance($app);
    $redis = parse_url($opts['redis-url'] ?? 'redis://127.0.0.1:6379/0');
    $app->instance('config', new Config([
        'cache' => [
            'default' => $opts['store'],
            'prefix' => $opts['cache-prefix'],
            'stores' => [
                'redis' => ['driver' => 'redis', 'connection' => 'cache'],
                'database' => ['driver' => 'database', 'table' => $opts['table'], 'connection' => 'app'],
                'memcached' => ['driver' => 'memcached', 'persistent_id' => null, 'sasl' => [],
                    'options' => $opts['ketama'] ? [Memcached::OPT_LIBKETAMA_COMPATIBLE => true] : [],
                    'servers' => array_map(function (string $server) {
                        [$host, $port] = explode(':', $server);
                        return ['host' => $host, 'port' => (int) $port, 'weight' => 100];
                    }, $opts['servers'] === null ? [] : explode(',', $opts['servers']))],
            ],
        ],
        'database' => [
            'default' => 'app',
            'connections' => $opts['db'] === null ? [] : ['app' => db_connection($opts['db'])],
            'redis' => $opts['redis-cluster'] === null ? [
                'client' => 'phpredis',
                'options' => ['prefix' => $opts['redis-prefix']],
                'cache' => ['host' => $redis['host'] ?? '127.0.0.1', 'port' => $redis['port'] ?? 6379,
                    'database' => (int) ltrim($redis['path'] ?? '/0', '/'), 'password' => null],
            ] : [
                'client' => 'phpredis',
                'options' => ['cluster' => 'redis', 'prefix' => $opts['redis-prefix']],
                'clusters' => ['cache' => array_map(function (string $node) {
                    [$host, $port] = explode(':', $node);
                    return ['host' => $host, 'port' => (int) $port, 'password' => null, 'database' => 0];
                }, explode(',', $opts['redis-cluster']))],
            ],
        ],
    ]));
    $app->singleton('redis', fn ($app) => new RedisManager($app, 'phpredis', $app['config']['database.redis']));
    $app->singleton('db', fn ($app) => new DatabaseManager($app, new ConnectionFactory($app)));
    $app->singleton('memcached.connector', fn () => new MemcachedConnector());
    return (new CacheManager($app))->store();
}

/**
 * Creates the cache table with Laravel's own schema (its cache migration),
 * and the SQLite file, when they are missing, for --self-test and --write on
 * the database store.
 */
function ensure_table(array $opts): void
{
    if ($opts['store'] !== 'database') {
        return;
    }
    if (str_starts_with($opts['db'], 'sqlite://') && !file_exists(substr($opts['db'], strlen('sqlite://')))) {
        touch(substr($opts['db'], strlen('sqlite://')));
    }
    $schema = Container::getInstance()['db']->connection()->getSchemaBuilder();
    if (!$schema->hasTable($opts['table'])) {
        $schema->create($opts['table'], function ($table) {
            $table->string('key')->primary();
            $table->mediumText('value');
            $table->integer('expiration');
        });
    }
}

/** Runs $call; an exception (or a PHP notice, made one) is added to $errors. */
function attempt(string $name, callable $call, array &$errors)
{
    try {
        return $call();
    } catch (Throwable $e) {
        $errors[] = "$name: " . get_class($e) . ': ' . $e->getMessage();
        return null;
    }
}

/** What get() returns once the application itself has cached $value. */
function as_the_app_reads_it($cache, $value)
{
    $scratch = 'preheat-reader/roundtrip';
    $cache->put($scratch, $value, 60);
    $back = $cache->get($scratch);
    $cache->forget($scratch);
    return $back;
}

/** The decoded value as JSON-able data (invalid UTF-8 shown as a description). */
function shown($value)
{
    return json_encode($value) === false ? 'not JSON-able: ' . var_export($value, true) : $value;
}

/**
 * Reads one key with get() and has(); never throws. Without an intended
 * value ($compare false), "equal" is null.
 */
function check($cache, string $key, $want, bool $compare = true): array
{
    $errors = [];
    $got = attempt('get', fn () => $cache->get($key), $errors);
    $has = attempt('has', fn () => $cache->has($key), $errors);
    $calls = ['get' => $got !== null, 'has' => $has === true];
    $hit = $calls['get'] && $calls['has'];
    $expected = $compare ? attempt('roundtrip', fn () => as_the_app_reads_it($cache, $want), $errors) : null;
    return [
        'key' => $key,
        'hit' => $hit,
        'equal' => $compare ? $hit && $got === $expected : null,
        'calls' => $calls,
        'value' => shown($got),
        'error' => $errors ? implode('; ', $errors) : null,
    ];
}

/** The intended values of a VALUES.json file (hex-decoded with --bytes). */
function values(string $path, bool $bytes): array
{
    $values = json_decode(file_get_contents($path), true, 512, JSON_THROW_ON_ERROR);
    if (!is_array($values)) {
        fail_usage("$path: expected a JSON object mapping keys to values");
    }
    return $bytes ? array_map('hex2bin', $values) : $values;
}

set_error_handler(function (int $level, string $message, string $file, int $line) {
    throw new ErrorException($message, 0, $level, $file, $line);
});

$opts = arguments($argv);
$cache = cache_store($opts);
$line = fn (array $row) => print(json_encode($row, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION | JSON_INVALID_UTF8_SUBSTITUTE) . "\n");

switch ($opts['mode']) {
    case 'self-test':
        ensure_table($opts);
        foreach (SELF_TEST as $key => $value) {
            $cache->put($key, $value, 600);
        }
        foreach (SELF_TEST as $key => $value) {
            $line(check($cache, $key, $value));
        }
        foreach (SELF_TEST as $key => $value) {
            $cache->forget($key);
        }
        break;
    case 'write':
        ensure_table($opts);
        foreach (values($opts['values'], $opts['bytes']) as $key => $value) {
            $ttl = $opts['ttl'] === null ? null : (int) $opts['ttl'];
            $ttl === null ? $cache->forever((string) $key, $value) : $cache->put((string) $key, $value, $ttl);
            $line(['key' => (string) $key, 'written' => true]);
        }
        break;
    case 'keys':
        foreach ($opts['keys'] as $key) {
            $line(check($cache, $key, null, false));
        }
        break;
    default:
        foreach (values($opts['values'], $opts['bytes']) as $key => $want) {
            $line(check($cache, (string) $key, $want));
        }
}
