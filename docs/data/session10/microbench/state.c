#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <pthread.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static float *buf; static size_t N=16u<<20; static int mode;
static void* work(void*a){ long t=(long)a; if(mode==0){ __m256 x=_mm256_set1_ps(1.0001f),y=x,z=x,w=x; for(long i=0;i<20000000;i++){x=_mm256_fmadd_ps(x,x,y);y=_mm256_fmadd_ps(y,y,z);z=_mm256_fmadd_ps(z,z,w);w=_mm256_fmadd_ps(w,w,x);} float o[8];_mm256_storeu_ps(o,_mm256_add_ps(x,w)); return (void*)(long)(o[0]>1e30f);} 
 else { float*p=buf+t*N; __m256 s=_mm256_setzero_ps(); for(int r=0;r<4;r++) for(size_t i=0;i<N;i+=8) s=_mm256_add_ps(s,_mm256_load_ps(p+i)); float o[8];_mm256_storeu_ps(o,s); return (void*)(long)(o[0]>1e30f);} }
static double run(int th){ pthread_t t[2]; double s=now(); for(long k=0;k<th;k++) pthread_create(&t[k],0,work,(void*)k); for(int k=0;k<th;k++) pthread_join(t[k],0); return now()-s; }
int main(){ buf=aligned_alloc(64,2*N*4); for(size_t i=0;i<2*N;i++)buf[i]=1;
 for(int rep=0;rep<12;rep++){ mode=0; double c1=run(1), c2=run(2); mode=1; double m1=run(1), m2=run(2);
  printf("compute: 2thr/1thr time %.2f   memory(64MB each): 1thr %.1f GB/s, 2thr %.1f GB/s\n", c2/c1, 4*N*4/m1/1e9, 2*4*N*4/m2/1e9); }
}
