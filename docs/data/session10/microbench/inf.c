/* C model of BatchNorm inference on [4096, 1024] (x, y 16 MB each), 1 and 2
 * threads, streaming (NT) and cached stores. Build variants:
 *   gcc -O2 -mavx2 -mfma -pthread inf.c -o inf                 folded    y = x·α + β (PyTorch's form), AVX2
 *   gcc -O2 -mavx2 -mfma -pthread -DPIVOTED inf.c -o inf4      pivoted   y = (x − p)·s + t (ours), AVX2
 *   gcc -O2 -msse2 -pthread -DSSE -DPIVOTED inf.c -o inf3      pivoted, SSE2 (4 values per vector)
 * Times include creating the threads (~20 µs). docs/PERFORMANCE.md, "Tenth pass". */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <pthread.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
#define N 4096
#define C 1024
static float *x,*y,*a,*b,*p; static int mode, nth;
#ifdef SSE
#define W 4
#define VEC __m128
#define LOAD _mm_loadu_ps
#define STREAM _mm_stream_ps
#define STORE _mm_storeu_ps
#define COMPUTE(xv,c) _mm_add_ps(_mm_mul_ps(_mm_sub_ps(xv,LOAD(p+c)),LOAD(a+c)),LOAD(b+c))
#else
#define W 8
#define VEC __m256
#define LOAD _mm256_loadu_ps
#define STREAM _mm256_stream_ps
#define STORE _mm256_storeu_ps
#ifdef PIVOTED
#define COMPUTE(xv,c) _mm256_fmadd_ps(_mm256_sub_ps(xv,LOAD(p+c)),LOAD(a+c),LOAD(b+c))
#else
#define COMPUTE(xv,c) _mm256_fmadd_ps(xv,LOAD(a+c),LOAD(b+c))
#endif
#endif
static void* work(void*arg){ long t=(long)arg; int r0=N*t/nth, r1=N*(t+1)/nth;
  for(int r=r0;r<r1;r++){ const float*xr=x+(size_t)r*C; float*yr=y+(size_t)r*C;
    for(int c=0;c<C;c+=W){ VEC v=COMPUTE(LOAD(xr+c),c); if(mode==0) STREAM(yr+c,v); else STORE(yr+c,v);} }
  if(mode==0)_mm_sfence(); return 0; }
static double run(){ pthread_t th[2]; double s=now(); for(long k=0;k<nth;k++) pthread_create(&th[k],0,work,(void*)k); for(int k=0;k<nth;k++) pthread_join(th[k],0); return now()-s; }
int main(void){ x=aligned_alloc(64,(size_t)N*C*4); y=aligned_alloc(64,(size_t)N*C*4); a=aligned_alloc(64,C*4); b=aligned_alloc(64,C*4); p=aligned_alloc(64,C*4);
 for(size_t i=0;i<(size_t)N*C;i++){x[i]=i&7;y[i]=0;} for(int i=0;i<C;i++){a[i]=1.1f;b[i]=0.2f;p[i]=0.1f;}
 for(int rep=0;rep<6;rep++){ double res[4]; int k=0;
  for(mode=0;mode<2;mode++) for(nth=1;nth<=2;nth++){ double ts[21]; for(int i=0;i<21;i++) ts[i]=run();
     for(int i=0;i<21;i++)for(int j=i+1;j<21;j++)if(ts[j]<ts[i]){double q=ts[i];ts[i]=ts[j];ts[j]=q;} res[k++]=ts[10]*1e3; }
  printf("NT 1t %.3f  NT 2t %.3f   cached 1t %.3f  cached 2t %.3f ms\n",res[0],res[1],res[2],res[3]); }
}
