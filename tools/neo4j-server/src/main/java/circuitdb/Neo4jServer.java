package circuitdb;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

import org.neo4j.server.CommunityBootstrapper;

/**
 * Neo4j 5 Community as a local server: the server's own bootstrapper (Bolt, HTTP and, with neo4j-browser on the
 * class path, the Browser at /browser), a database directory of its own, auth on with the password given.
 *
 * <pre>
 * java -Xmx1g -cp target/classes:$(cat target/classpath.txt) circuitdb.Neo4jServer \
 *      --password secret123 --home DIR [--bolt-port 7687] [--http-port 7474] [--config key=value ...]
 * </pre>
 *
 * The database lives under --home (an empty directory gives an empty database; tests/neo4j_server.py makes a fresh one
 * per test session and deletes it afterwards). Prints one line {@code circuitdb-neo4j ready bolt://... http://...}
 * on stdout once Bolt accepts the password, stops cleanly on SIGTERM / SIGINT (the bootstrapper's signal handlers).
 */
public final class Neo4jServer {
    private Neo4jServer() {}

    public static void main(String[] args) throws Exception {
        String password = System.getenv("CIRCUITDB_NEO4J_PASSWORD");
        int boltPort = 7687;
        int httpPort = 7474;
        Path home = null;
        Map<String, String> config = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            String v = i + 1 < args.length ? args[i + 1] : null;
            switch (a) {
                case "--password" -> { password = v; i++; }
                case "--bolt-port" -> { boltPort = Integer.parseInt(v); i++; }
                case "--http-port" -> { httpPort = Integer.parseInt(v); i++; }
                case "--home" -> { home = Path.of(v).toAbsolutePath(); i++; }
                case "--config" -> {
                    int eq = v == null ? -1 : v.indexOf('=');
                    if (eq < 1) {
                        fail("--config takes key=value, got " + v);
                    }
                    config.put(v.substring(0, eq), v.substring(eq + 1));
                    i++;
                }
                default -> fail("unknown argument " + a
                        + "; valid: --password, --bolt-port, --http-port, --home, --config key=value");
            }
        }
        if (password == null || password.length() < 8) {
            fail("--password (or CIRCUITDB_NEO4J_PASSWORD) of at least 8 characters is required");
        }
        if (home == null) {
            fail("--home DIR is required (the server's directory: data, logs; an empty one gives an empty database)");
        }
        Path dir = home;
        Files.createDirectories(dir.resolve("conf"));
        Files.createDirectories(dir.resolve("plugins"));
        Files.createDirectories(dir.resolve("import"));

        Map<String, String> settings = new HashMap<>();
        settings.put("server.bolt.enabled", "true");
        settings.put("server.bolt.listen_address", "127.0.0.1:" + boltPort);
        settings.put("server.bolt.advertised_address", "127.0.0.1:" + boltPort);
        settings.put("server.http.enabled", "true");
        settings.put("server.http.listen_address", "127.0.0.1:" + httpPort);
        settings.put("server.http.advertised_address", "127.0.0.1:" + httpPort);
        settings.put("server.https.enabled", "false");
        settings.put("dbms.security.auth_enabled", "true");
        settings.put("dbms.usage_report.enabled", "false");
        // small footprint: the machine is shared; heap comes from the JVM's -Xmx
        settings.put("server.memory.pagecache.size", "128m");
        settings.put("dbms.memory.transaction.total.max", "512m");
        settings.put("db.tx_log.rotation.retention_policy", "2 files");
        settings.put("server.directories.logs", dir.resolve("logs").toString());
        settings.putAll(config);

        CommunityBootstrapper server = new CommunityBootstrapper();
        int rc = server.start(dir, settings);
        if (rc != 0) {
            fail("Neo4j did not start (exit code " + rc + "); see " + dir.resolve("logs"));
        }
        // the initial neo4j/neo4j user must change its password: set it once, from the embedded side
        server.getDatabaseManagementService().database("system").executeTransactionally(
                "ALTER USER neo4j SET PASSWORD $p CHANGE NOT REQUIRED", Map.of("p", password));
        System.out.println("circuitdb-neo4j ready bolt://127.0.0.1:" + boltPort + " http://127.0.0.1:" + httpPort
                + " home=" + dir);
        System.out.flush();
        Thread.currentThread().join(); // the bootstrapper's signal handlers stop the server and exit
    }

    private static void fail(String message) {
        System.err.println("circuitdb-neo4j: " + message);
        System.exit(2);
    }
}
