/*
 * A test-only Kafka Connect source connector whose taskConfigs() blocks: it holds the worker's herder thread.
 *
 * Connect's DistributedHerder calls Connector.taskConfigs() on its own thread when a started connector's tasks
 * are (re)configured (DistributedHerder.reconfigureConnector -> Worker.connectorTaskConfigs), so while it blocks
 * every request queued for the herder (GET /health on Kafka >= 3.9, GET /connectors/{name}, PUT .../config) waits.
 *
 * taskConfigs() blocks while the file named by `block.file` exists (the test deletes it to release the herder),
 * and at most `block.max.ms` (so a test that dies never leaves a worker stuck for good). On entering it, it creates
 * the file named by `entered.file` (if set), so a test knows the herder is held. It returns no task configs.
 *
 * Compiled by tests/integration/test_herder.py at test time with the JDK's javac against the Kafka jars the
 * launcher fetched; never committed as a .class or .jar.
 */
package connecthealth.testplugins;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Collections;
import java.util.List;
import java.util.Map;

import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.source.SourceConnector;
import org.apache.kafka.connect.source.SourceRecord;
import org.apache.kafka.connect.source.SourceTask;

public class BlockingConnector extends SourceConnector {
    public static final String BLOCK_FILE = "block.file";
    public static final String ENTERED_FILE = "entered.file";
    public static final String BLOCK_MAX_MS = "block.max.ms";

    private static final ConfigDef CONFIG = new ConfigDef()
        .define(BLOCK_FILE, ConfigDef.Type.STRING, ConfigDef.Importance.HIGH,
                "taskConfigs() blocks while this file exists")
        .define(ENTERED_FILE, ConfigDef.Type.STRING, "", ConfigDef.Importance.LOW,
                "created when taskConfigs() starts blocking (empty: none)")
        .define(BLOCK_MAX_MS, ConfigDef.Type.LONG, 300_000L, ConfigDef.Importance.LOW,
                "taskConfigs() blocks at most this long, whatever the file");

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
        return IdleTask.class;
    }

    @Override
    public List<Map<String, String>> taskConfigs(int maxTasks) {
        Path block = Paths.get(props.get(BLOCK_FILE));
        String entered = props.getOrDefault(ENTERED_FILE, "");
        long maxMs = Long.parseLong(props.getOrDefault(BLOCK_MAX_MS, "300000"));
        if (!entered.isEmpty()) {
            try {
                Files.write(Paths.get(entered), new byte[0]);
            } catch (IOException e) {
                throw new IllegalStateException("cannot create " + entered, e);
            }
        }
        long deadline = System.nanoTime() + maxMs * 1_000_000L;
        while (Files.exists(block) && System.nanoTime() - deadline < 0) {
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        return Collections.emptyList();
    }

    @Override
    public void stop() {
    }

    @Override
    public ConfigDef config() {
        return CONFIG;
    }

    /** Never started (taskConfigs() returns none); Connect wants a task class all the same. */
    public static class IdleTask extends SourceTask {
        @Override
        public String version() {
            return "test";
        }

        @Override
        public void start(Map<String, String> props) {
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
