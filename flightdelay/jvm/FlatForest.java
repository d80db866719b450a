package flightdelay.jvm;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Paths;

import org.apache.spark.sql.api.java.UDF1;

import scala.collection.Seq;

/**
 * A random forest as flat primitive arrays, scored by a Spark SQL UDF: the served
 * PipelineModel's predictions and probabilities, bit for bit, without MLlib's per-node objects
 * and the boxed Scala HashSet behind every categorical split (a third of the predict query's
 * CPU in the profile). Built from the model by flightdelay/compiled_forest.py.
 *
 * Input: the assembled feature values (VectorAssembler's order; a category is its StringIndexer
 * index; null = NaN, as VectorAssembler's handleInvalid=keep gives). Output: the class
 * probabilities followed by the prediction (the first index of the largest vote).
 */
public final class FlatForest implements UDF1<Seq<Object>, double[]> {
    private static final long serialVersionUID = 1L;

    private final int numClasses;
    private final int[] roots;       // per tree: index of its root node
    private final int[] feature;     // per node: feature index, -1 for a leaf
    private final double[] threshold;
    private final int[] left;
    private final int[] right;
    private final int[] catStart;    // per node: first word of its left-category bitset, -1 if continuous
    private final int[] catWords;
    private final long[] catBits;
    private final double[] stats;    // per node: numClasses class weights

    private FlatForest(int numClasses, int[] roots, int[] feature, double[] threshold, int[] left, int[] right,
                       int[] catStart, int[] catWords, long[] catBits, double[] stats) {
        this.numClasses = numClasses;
        this.roots = roots;
        this.feature = feature;
        this.threshold = threshold;
        this.left = left;
        this.right = right;
        this.catStart = catStart;
        this.catWords = catWords;
        this.catBits = catBits;
        this.stats = stats;
    }

    /** Reads the whitespace-separated file written by compiled_forest.write_flat_forest. */
    public static FlatForest load(String path) throws IOException {
        String[] t = new String(Files.readAllBytes(Paths.get(path)), "UTF-8").trim().split("\\s+");
        int[] at = {0};
        int numClasses = Integer.parseInt(t[at[0]++]);
        int numTrees = Integer.parseInt(t[at[0]++]);
        int numNodes = Integer.parseInt(t[at[0]++]);
        int numWords = Integer.parseInt(t[at[0]++]);
        int[] roots = new int[numTrees];
        for (int i = 0; i < numTrees; i++) roots[i] = Integer.parseInt(t[at[0]++]);
        int[] feature = new int[numNodes];
        double[] threshold = new double[numNodes];
        int[] left = new int[numNodes];
        int[] right = new int[numNodes];
        int[] catStart = new int[numNodes];
        int[] catWords = new int[numNodes];
        long[] catBits = new long[numWords];
        double[] stats = new double[numNodes * numClasses];
        int word = 0;
        for (int n = 0; n < numNodes; n++) {
            feature[n] = Integer.parseInt(t[at[0]++]);
            threshold[n] = Double.parseDouble(t[at[0]++]);
            left[n] = Integer.parseInt(t[at[0]++]);
            right[n] = Integer.parseInt(t[at[0]++]);
            catWords[n] = Integer.parseInt(t[at[0]++]);
            catStart[n] = catWords[n] > 0 ? word : -1;
            for (int w = 0; w < catWords[n]; w++) catBits[word++] = Long.parseLong(t[at[0]++]);
            for (int c = 0; c < numClasses; c++) stats[n * numClasses + c] = Double.parseDouble(t[at[0]++]);
        }
        if (at[0] != t.length || word != numWords) {
            throw new IOException(path + ": " + (t.length - at[0]) + " tokens left, " + word + "/" + numWords + " words");
        }
        return new FlatForest(numClasses, roots, feature, threshold, left, right, catStart, catWords, catBits, stats);
    }

    private boolean goesLeft(int node, double value) {
        int start = catStart[node];
        if (start < 0) {
            return value <= threshold[node];  // NaN goes right, as in MLlib's ContinuousSplit
        }
        if (!(value >= 0)) {
            return false;
        }
        int category = (int) value;
        int w = category >>> 6;
        return category == value && w < catWords[node] && (catBits[start + w] & (1L << (category & 63))) != 0;
    }

    private int leafOf(int root, double[] x) {
        int node = root;
        while (feature[node] >= 0) {
            node = goesLeft(node, x[feature[node]]) ? left[node] : right[node];
        }
        return node;
    }

    @Override
    public double[] call(Seq<Object> features) {
        int size = features.length();
        double[] x = new double[size];
        for (int i = 0; i < size; i++) {
            Object v = features.apply(i);
            x[i] = v == null ? Double.NaN : ((Number) v).doubleValue();
        }
        // RandomForestClassificationModel.predictRaw: each tree votes its leaf's class weights
        // over their sum, in tree order; then raw2probability and raw2prediction.
        double[] votes = new double[numClasses];
        for (int root : roots) {
            int base = leafOf(root, x) * numClasses;
            double total = 0.0;
            for (int c = 0; c < numClasses; c++) total += stats[base + c];
            if (total != 0) {
                for (int c = 0; c < numClasses; c++) votes[c] += stats[base + c] / total;
            }
        }
        int best = 0;
        for (int c = 1; c < numClasses; c++) {
            if (votes[c] > votes[best]) best = c;
        }
        double sum = 0.0;
        for (int c = 0; c < numClasses; c++) sum += votes[c];
        double[] out = new double[numClasses + 1];
        for (int c = 0; c < numClasses; c++) out[c] = votes[c] / sum;
        out[numClasses] = best;
        return out;
    }
}
