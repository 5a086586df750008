import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

import java.util.List;
import java.util.Map;

/**
 * The broker's own admin and producer clients, for tests that need a topic holding records and the consumer groups
 * the broker knows (run by the JDK's source launcher on the fetched Kafka jars, which hold the clients but not the
 * CLI tools module).
 *
 *   KafkaAdmin BOOTSTRAP produce TOPIC N   one partition, N records, the JSON strings "record 0" .. "record N-1" (the
 *                                        workers read values with the JsonConverter), each acknowledged by all
 *   KafkaAdmin BOOTSTRAP groups            "group <id>" for every consumer group, one a line (the clients log too)
 */
public class KafkaAdmin {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        Map<String, Object> common = Map.of("bootstrap.servers", bootstrap);
        switch (args[1]) {
            case "produce": {
                String topic = args[2];
                int n = Integer.parseInt(args[3]);
                try (Admin admin = Admin.create(common)) {
                    admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get();
                }
                Map<String, Object> props = Map.of("bootstrap.servers", bootstrap, "acks", "all",
                        "key.serializer", StringSerializer.class.getName(),
                        "value.serializer", StringSerializer.class.getName());
                try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
                    for (int i = 0; i < n; i++) {
                        producer.send(new ProducerRecord<>(topic, "\"record " + i + "\"")).get();
                    }
                }
                System.out.println("produced " + n);
                break;
            }
            case "groups": {
                try (Admin admin = Admin.create(common)) {
                    for (var g : admin.listConsumerGroups().all().get()) System.out.println("group " + g.groupId());
                }
                break;
            }
            default:
                throw new IllegalArgumentException("unknown command " + args[1]);
        }
    }
}
