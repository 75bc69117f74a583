// Builds the shaded Jackson jar that iceberg-spark-runtime-3.5_2.12-1.10.2.jar
// (as shipped by the `snowpark-connect-deps-iceberg` wheel) expects but lacks:
// without it Spark fails with
//   NoClassDefFoundError: org/apache/iceberg/shaded/com/fasterxml/jackson/...
//
// It relocates pyspark's own Jackson jars from `com.fasterxml.jackson` into
// `org.apache.iceberg.shaded.com.fasterxml.jackson`, the same relocation the
// Iceberg build applies with the Gradle shadow plugin. The class rewriting is
// done by the ASM copy that pyspark already ships (xbean-asm9-shaded), so no
// extra download is needed.
//
// Usage (driven by scripts/test-tools.sh):
//   javac -cp xbean-asm9-shaded.jar -d TMP ShadeJackson.java
//   java -cp TMP:xbean-asm9-shaded.jar ShadeJackson OUT.jar IN1.jar IN2.jar ...
//
// The output is first written to OUT.jar.tmp and then moved into place, so an
// interrupted run never leaves a half-written jar that later runs would trust.

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.HashSet;
import java.util.Set;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

import org.apache.xbean.asm9.ClassReader;
import org.apache.xbean.asm9.ClassWriter;
import org.apache.xbean.asm9.commons.ClassRemapper;
import org.apache.xbean.asm9.commons.Remapper;

public final class ShadeJackson {
    private static final String FROM_SLASH = "com/fasterxml/jackson/";
    private static final String TO_SLASH = "org/apache/iceberg/shaded/com/fasterxml/jackson/";
    private static final String FROM_DOT = FROM_SLASH.replace('/', '.');
    private static final String TO_DOT = TO_SLASH.replace('/', '.');

    /** Maps a dotted or slashed name into the shaded package; other names pass unchanged. */
    static String relocate(String name) {
        if (name.startsWith(FROM_SLASH)) {
            return TO_SLASH + name.substring(FROM_SLASH.length());
        }
        if (name.startsWith(FROM_DOT)) {
            return TO_DOT + name.substring(FROM_DOT.length());
        }
        return name;
    }

    /**
     * Relocates type names, and also string constants that name Jackson classes:
     * Jackson loads some optional handlers with Class.forName("com.fasterxml...")
     * and the shadow/shade plugins rewrite those literals too.
     */
    static final class JacksonRemapper extends Remapper {
        @Override
        public String map(String internalName) {
            return relocate(internalName);
        }

        @Override
        public Object mapValue(Object value) {
            if (value instanceof String) {
                return relocate((String) value);
            }
            return super.mapValue(value);
        }
    }

    /** Entries that must not be copied: signatures, module descriptors, per-JDK variants, build metadata. */
    static boolean skip(String name) {
        return name.endsWith("/")
            || name.equals("META-INF/MANIFEST.MF")
            // Multi-release variants would need relocating too; the base classes work on every JDK.
            || name.startsWith("META-INF/versions/")
            || name.endsWith("module-info.class")
            || name.startsWith("META-INF/maven/")
            || name.endsWith(".SF") || name.endsWith(".RSA") || name.endsWith(".DSA");
    }

    static byte[] remapClass(byte[] bytes) {
        ClassReader reader = new ClassReader(bytes);
        // A fresh writer (not sharing the reader's constant pool) so that no stale
        // unshaded names linger in the output; frames are remapped, not recomputed.
        ClassWriter writer = new ClassWriter(0);
        reader.accept(new ClassRemapper(writer, new JacksonRemapper()), 0);
        return writer.toByteArray();
    }

    /** Rewrites a ServiceLoader file: each non-comment line is a class name. */
    static byte[] remapServiceFile(byte[] bytes) {
        String text = new String(bytes, StandardCharsets.UTF_8);
        StringBuilder out = new StringBuilder();
        for (String line : text.split("\n", -1)) {
            String trimmed = line.trim();
            out.append(trimmed.isEmpty() || trimmed.startsWith("#") ? line : relocate(trimmed));
            out.append('\n');
        }
        // split(-1) adds one trailing empty element for a final newline; drop the extra one.
        return out.substring(0, out.length() - 1).getBytes(StandardCharsets.UTF_8);
    }

    static byte[] readAll(InputStream in) throws IOException {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        in.transferTo(buf);
        return buf.toByteArray();
    }

    public static void main(String[] args) throws IOException {
        if (args.length < 2) {
            System.err.println("usage: ShadeJackson OUT.jar IN.jar...");
            System.exit(2);
        }
        Path out = Paths.get(args[0]);
        Path tmp = Paths.get(args[0] + ".tmp");
        Manifest manifest = new Manifest();
        manifest.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
        manifest.getMainAttributes().putValue("Created-By", "floe scripts/ShadeJackson.java");

        Set<String> written = new HashSet<>();
        int classes = 0;
        try (OutputStream fileOut = Files.newOutputStream(tmp);
             JarOutputStream jar = new JarOutputStream(fileOut, manifest)) {
            for (int i = 1; i < args.length; i++) {
                try (ZipFile in = new ZipFile(args[i])) {
                    for (ZipEntry entry : java.util.Collections.list(in.entries())) {
                        String name = entry.getName();
                        if (skip(name)) {
                            continue;
                        }
                        byte[] data;
                        try (InputStream s = in.getInputStream(entry)) {
                            data = readAll(s);
                        }
                        if (name.endsWith(".class")) {
                            data = remapClass(data);
                            name = relocate(name);
                            classes++;
                        } else if (name.startsWith("META-INF/services/")) {
                            data = remapServiceFile(data);
                            name = "META-INF/services/" + relocate(name.substring("META-INF/services/".length()));
                        }
                        // LICENSE/NOTICE appear in each input jar: the first copy wins.
                        if (!written.add(name)) {
                            continue;
                        }
                        jar.putNextEntry(new JarEntry(name));
                        jar.write(data);
                        jar.closeEntry();
                    }
                }
            }
        }
        Files.move(tmp, out, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        System.out.println("shaded " + classes + " classes into " + out);
    }
}
