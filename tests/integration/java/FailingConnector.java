/*
 * A test-only Kafka Connect source connector that fails in one of the ways a restart cannot fix, or can, chosen by
 * its `mode` setting (tests/integration/test_failure_classes.py):
 *
 * - `too-many-tasks`: taskConfigs(maxTasks) returns maxTasks + 2 configs. Kafka 3.8+ (KIP-1004) fails the connector
 *   with its own TooManyTasksException; nothing here fails.
 * - `oom`: the task's start() allocates an array larger than the JVM's heap can hold; the JVM itself throws
 *   java.lang.OutOfMemoryError (at once: nothing is filled, the worker's other tasks are untouched).
 * - `jdbc`: the task's start() connects to `jdbc.url` as `jdbc.user` / `jdbc.password` with the PostgreSQL JDBC
 *   driver (pgjdbc, next to this jar in the plugin's directory) and wraps the driver's SQLException in a
 *   ConnectException, as JDBC connectors do.
 *
 * Compiled by the tests at test time with the JDK's javac against the fetched connect-api jar; never committed as a
 * .class or .jar.
 */
package connecthealth.testplugins;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.source.SourceConnector;
import org.apache.kafka.connect.source.SourceRecord;
import org.apache.kafka.connect.source.SourceTask;

public class FailingConnector extends SourceConnector {
    private static final ConfigDef CONFIG = new ConfigDef()
        .define("mode", ConfigDef.Type.STRING, ConfigDef.Importance.HIGH, "too-many-tasks | oom | jdbc")
        .define("jdbc.url", ConfigDef.Type.STRING, "", ConfigDef.Importance.LOW, "jdbc mode: the database URL")
        .define("jdbc.user", ConfigDef.Type.STRING, "", ConfigDef.Importance.LOW, "jdbc mode: the user")
        .define("jdbc.password", ConfigDef.Type.PASSWORD, "", ConfigDef.Importance.LOW, "jdbc mode: the password");

    private Map<String, String> props = Collections.emptyMap();

    @Override
    public String version() {
        return "test";
    }

    @Override
    public void start(Map<String, String> props) {
        this.props = props;
    }

    @Override
    public Class<? extends Task> taskClass() {
        return FailingTask.class;
    }

    @Override
    public List<Map<String, String>> taskConfigs(int maxTasks) {
        int n = "too-many-tasks".equals(props.get("mode")) ? maxTasks + 2 : maxTasks;
        List<Map<String, String>> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(new HashMap<>(props));
        }
        return out;
    }

    @Override
    public void stop() {
    }

    @Override
    public ConfigDef config() {
        return CONFIG;
    }

    public static class FailingTask extends SourceTask {
        static long[] kept;

        @Override
        public String version() {
            return "test";
        }

        @Override
        public void start(Map<String, String> props) {
            String mode = props.get("mode");
            if ("oom".equals(mode)) {
                kept = new long[Integer.MAX_VALUE - 16];  // 16 GiB: more than any test worker's heap
            } else if ("jdbc".equals(mode)) {
                String url = props.get("jdbc.url");
                try (Connection c = DriverManager.getConnection(url, props.get("jdbc.user"), props.get("jdbc.password"))) {
                    c.isValid(5);
                } catch (SQLException e) {
                    throw new ConnectException("Cannot connect to " + url, e);
                }
            }
        }

        @Override
        public List<SourceRecord> poll() throws InterruptedException {
            Thread.sleep(1000);
            return null;
        }

        @Override
        public void stop() {
        }
    }
}
