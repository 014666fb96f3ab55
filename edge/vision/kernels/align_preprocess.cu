/*
 * Fused face alignment + normalisation: camera frame -> network input tensor.
 *
 * One thread per output pixel (u, v) of one face; the grid's z axis is the face.
 * Each thread maps its chip pixel through the face's 2x3 matrix into the frame,
 * interpolates bilinearly and writes the three normalised values straight into
 * the engine's float32 NCHW input buffer (planes R, G, B).
 *
 * The maths is the one defined in the docstring of edge/vision/align.py
 * ("Sampling formulas"); warp_reference() there is its numpy reference and the
 * tests compare this kernel to it. In short:
 *   x0 = floor(x), y0 = floor(y), fx = x - x0, fy = y - y0
 *   value = 0 when the 2x2 neighbourhood leaves the frame (dlib's rule), else
 *   (1-fy)*((1-fx)*I[y0][x0] + fx*I[y0][x0+1]) + fy*((1-fx)*I[y0+1][x0] + fx*I[y0+1][x0+1])
 *   out = (value - mean) * inv_std
 * Keep the two in step when changing either.
 *
 * Faces much larger than the chip are first shrunk by pyramid_down below
 * (dlib's anti-alias step, see edge/vision/align.py pyramid_plan), so that GPU
 * and CPU chips agree for large faces too.
 *
 * Plain C with its own extern "C" linkage: the build step compiles this file
 * ahead of time into a fatbin for the Jetson GPUs (nvcc -fatbin, sm_72 and
 * sm_87; edge_build.cuda_kernels) that pycuda loads with module_from_buffer, so
 * the device needs no compiler at run time. With a small shim it also builds as
 * host C++ for the CPU tests.
 */

extern "C" __global__ void align_preprocess(
    const unsigned char *frame, /* H x W x 3 bytes, interleaved */
    int width,
    int height,
    int pitch,                  /* bytes from one frame row to the next */
    int bgr,                    /* 1: bytes are B,G,R (OpenCV); 0: R,G,B */
    const float *matrices,      /* n_faces x 6: m00 m01 m02 m10 m11 m12, chip (u,v) -> frame (x,y) */
    int n_faces,
    float mean_r, float mean_g, float mean_b,
    float inv_std_r, float inv_std_g, float inv_std_b,
    int size,                   /* chip side in pixels */
    float *out)                 /* n_faces x 3 x size x size, planes R, G, B */
{
    const int u = blockIdx.x * blockDim.x + threadIdx.x;
    const int v = blockIdx.y * blockDim.y + threadIdx.y;
    const int face = blockIdx.z;
    if (u >= size || v >= size || face >= n_faces)
        return;

    const float *m = matrices + 6 * face;
    const float x = m[0] * u + m[1] * v + m[2];
    const float y = m[3] * u + m[4] * v + m[5];
    const float xf = floorf(x);
    const float yf = floorf(y);

    float red = 0.0f, green = 0.0f, blue = 0.0f;
    /* Test in float before converting: a far-off (or NaN) point must not
     * overflow the int conversion; NaN fails every comparison and stays black. */
    if (xf >= 0.0f && yf >= 0.0f && xf + 1.0f < (float)width && yf + 1.0f < (float)height) {
        const int x0 = (int)xf;
        const int y0 = (int)yf;
        const float fx = x - xf;
        const float fy = y - yf;
        const float gx = 1.0f - fx;
        const float gy = 1.0f - fy;
        const unsigned char *top = frame + (size_t)y0 * (size_t)pitch + 3 * (size_t)x0;
        const unsigned char *bottom = top + pitch;
        float value[3];
        for (int k = 0; k < 3; ++k) {
            value[k] = gy * (gx * top[k] + fx * top[3 + k]) + fy * (gx * bottom[k] + fx * bottom[3 + k]);
        }
        red = bgr ? value[2] : value[0];
        green = value[1];
        blue = bgr ? value[0] : value[2];
    }

    const size_t plane = (size_t)size * (size_t)size;
    float *pixel = out + (size_t)face * 3 * plane + (size_t)v * size + u;
    pixel[0] = (red - mean_r) * inv_std_r;
    pixel[plane] = (green - mean_g) * inv_std_g;
    pixel[2 * plane] = (blue - mean_b) * inv_std_b;
}

/*
 * dlib's pyramid_down<2> on an interleaved 3-channel uint8 image: a 5x5 binomial
 * filter (taps 1 4 6 4 1 in each direction, sum 256) evaluated only where it fits
 * (no border), output (c, r) from input rows 2r..2r+4 and columns 2c..2c+4, and the
 * sum truncated: out = floor(sum / 256). Integer arithmetic, so every GPU gives
 * the bytes edge.vision.align.dlib_pyramid_down gives. The output is
 * ((H - 3) / 2) x ((W - 3) / 2); the caller computes it and skips images below 9 px.
 */
extern "C" __global__ void pyramid_down(
    const unsigned char *src,   /* H x W x 3 bytes, rows src_pitch bytes apart */
    int src_pitch,
    unsigned char *dst,         /* out_h x out_w x 3 bytes, rows dst_pitch bytes apart */
    int out_width,
    int out_height,
    int dst_pitch)
{
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    const int r = blockIdx.y * blockDim.y + threadIdx.y;
    if (c >= out_width || r >= out_height)
        return;

    const int taps[5] = {1, 4, 6, 4, 1};
    int sum[3] = {0, 0, 0};
    for (int i = 0; i < 5; ++i) {
        const unsigned char *row = src + (size_t)(2 * r + i) * (size_t)src_pitch + 3 * (size_t)(2 * c);
        int line[3] = {0, 0, 0};
        for (int j = 0; j < 5; ++j) {
            for (int k = 0; k < 3; ++k)
                line[k] += taps[j] * row[3 * j + k];
        }
        for (int k = 0; k < 3; ++k)
            sum[k] += taps[i] * line[k];
    }
    unsigned char *out = dst + (size_t)r * (size_t)dst_pitch + 3 * (size_t)c;
    for (int k = 0; k < 3; ++k)
        out[k] = (unsigned char)(sum[k] >> 8);
}
